"""Which failed syncs Dagster retries: only those a retry can heal (tests/integration/test_shopify_ingest.py
shows a refused load end to end; here, how each kind of failure is told apart)."""

from __future__ import annotations

import requests
from dlt.load.exceptions import LoadClientJobFailed

from pipelines.ingest.pipeline import deterministic_error
from pipelines.workspaces import WorkspaceError


def wrapped(cause: BaseException) -> RuntimeError:
    """`cause` inside another exception, as dlt's PipelineStepFailed carries what a step raised."""
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("Pipeline execution failed at step=load") from inner
    except RuntimeError as outer:
        return outer


def test_a_load_the_warehouse_refuses_for_good_is_not_retried():
    refused = LoadClientJobFailed("1796.1", "order_line_items.a1b2.sql", "invalid byte sequence 0x00",
                                  ValueError("CharacterNotInRepertoire"))
    reason = deterministic_error(wrapped(refused), "shop-us")
    assert reason is not None
    assert reason.startswith("workspace 'shop-us': the warehouse refused the load for good")
    assert "cursor stays where it was" in reason and "order_line_items" in reason


def test_a_configuration_error_is_not_retried_and_keeps_its_message():
    error = WorkspaceError("workspace 'shop-us': connectors.shopify.access_token_env names environment "
                           "variable SHOP_US_TOKEN, which is not set")
    assert deterministic_error(wrapped(error), "shop-us") == str(error)


def test_network_faults_are_retried():
    assert deterministic_error(wrapped(requests.ConnectionError("connection reset")), "shop-us") is None
    assert deterministic_error(wrapped(TimeoutError()), "shop-us") is None
