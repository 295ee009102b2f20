"""Ingest assets through the real Definitions: every demo workspace materializes from the sandbox,
with sync metadata; a workspace with bad credentials fails alone, naming the setting."""

from __future__ import annotations

import importlib
from datetime import date

import dagster as dg
import pytest

from pipelines.sandbox.core.connection import sandbox_env
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation.runner import truth

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    store = build_store(tmp_path_factory.mktemp("sandbox") / "tiny.sqlite", size="tiny", seed=4, as_of=AS_OF)
    with Sandbox(store) as running:
        yield running


@pytest.fixture
def definitions(sandbox, tmp_path, monkeypatch):
    """The real Definitions, loaded for a fresh ABOS_HOME and pointed at the sandbox."""
    monkeypatch.setenv("ABOS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("ABOS_WORKSPACES", raising=False)
    for key, value in sandbox_env(sandbox.connection_info()).items():
        monkeypatch.setenv(key, value)
    import pipelines.definitions

    return importlib.reload(pipelines.definitions).defs


def materialize(defs: dg.Definitions, workspace_id: str, group_prefix: str = "ingest_") -> dg.ExecuteInProcessResult:
    graph = defs.resolve_asset_graph()
    assets = [a for a in graph.assets_defs if a.is_materializable]
    keys = [
        key for a in assets if a.partitions_def and workspace_id in a.partitions_def.get_partition_keys()
        for key in a.keys if (a.group_names_by_key[key] or "").startswith(group_prefix)
    ]
    return dg.materialize(assets, selection=keys, partition_key=workspace_id, raise_on_error=False,
                          instance=dg.DagsterInstance.ephemeral())


def test_every_demo_workspace_ingests_through_dagster(definitions, sandbox):
    expected = truth(sandbox.store)["workspaces"]
    for workspace_id, source, table in (("demo-us-store", "shopify", "orders"), ("demo-br-store", "shopify", "orders"),
                                        ("demo-saas", "stripe", "invoices")):
        result = materialize(definitions, workspace_id)
        assert result.success, workspace_id
        materializations = {
            event.asset_key.path[-1]: event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.asset_key.path[0] == source
        }
        metadata = materializations[table]
        assert metadata["rows_loaded"].value == expected[workspace_id]["counts"][table]
        assert metadata["workspace_id"].value == workspace_id
        assert metadata["load_id"].value
        assert metadata["sync_mode"].value == "full"
        assert metadata["api_requests"].value > 0
        assert metadata["cursor_before"].value == {}
        assert metadata["cursor_after"].value  # the connector stored where the next sync starts
        assert metadata["schema_changes"].value == ["first load"]


def test_bad_credentials_fail_only_that_workspace(definitions, monkeypatch):
    monkeypatch.setenv("DEMO_US_STORE_SHOPIFY_TOKEN", "shpat_wrong")
    import pipelines.definitions

    defs = importlib.reload(pipelines.definitions).defs
    failed = materialize(defs, "demo-us-store")
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message + (failure.step_failure_data.user_failure_data.description
                                                         if failure.step_failure_data.user_failure_data else "")
    assert "demo-us-store" in message and "access_token" in message
    assert "shpat_wrong" not in message
    assert materialize(defs, "demo-br-store").success


def test_abos_run_extracts_every_source_and_workspace_at_once(definitions, sandbox, tmp_path):
    """`abos run`'s first wave is every ingestion run; run together, the Shopify and the Stripe
    extracts overlap in time (the sandbox's request log, over HTTP), and every run loads its truth."""
    from pipelines.run import _together, _waves, execute_stage_job, stage_runs
    from pipelines.settings import load_settings
    from pipelines.workspaces import load_workspaces

    workspaces = load_workspaces(load_settings().workspaces_file)
    wave = _waves(stage_runs(definitions), workspaces)[0]
    assert {(job, workspace) for job, workspace, _ in wave} == {
        ("ingest_fx", None), ("ingest_shopify", "demo-us-store"), ("ingest_shopify", "demo-br-store"),
        ("ingest_stripe", "demo-saas")}
    mark = len(sandbox.requests)
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        results = _together([lambda job=job, workspace=workspace, keys=keys: execute_stage_job(
            definitions, job, keys, workspace, instance, {}, tags={}) for job, workspace, keys in wave])
    assert all(result.success for result in results)
    spans = {}
    for entry in sandbox.requests.entries(mark):
        first, last = spans.get(entry["server"], (entry["time"], entry["time"]))
        spans[entry["server"]] = (min(first, entry["time"]), max(last, entry["time"]))
    (shopify_first, shopify_last), (stripe_first, stripe_last) = spans["shopify"], spans["stripe"]
    assert max(shopify_first, stripe_first) < min(shopify_last, stripe_last), spans  # the two extracts overlap
    expected = truth(sandbox.store)["workspaces"]
    loaded = {(event.asset_key.path[-1], event.partition): event.materialization.metadata["rows_loaded"].value
              for result in results for event in result.get_asset_materialization_events()
              if event.asset_key.path[0] in ("shopify", "stripe")}
    assert loaded[("orders", "demo-us-store")] == expected["demo-us-store"]["counts"]["orders"]
    assert loaded[("orders", "demo-br-store")] == expected["demo-br-store"]["counts"]["orders"]
    assert loaded[("invoices", "demo-saas")] == expected["demo-saas"]["counts"]["invoices"]
