"""Many tenants in the sandbox (`--tenants N`): generated tiny shops and SaaS accounts, their truth,
their API answers, and the tenants file that points the pipeline at them."""

from __future__ import annotations

from datetime import date

import pytest
import requests

from pipelines.sandbox.core.connection import sandbox_env
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation.runner import truth
from pipelines.sandbox.simulation.simulator import history_days, specs
from pipelines.sandbox.simulation.tenants import split_size, workspaces_file
from pipelines.workspaces import load_workspaces

AS_OF = date(2026, 11, 20)
SIZE = "tiny+4"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("tenants") / "tenants.sqlite", size=SIZE, seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def found(store):
    return truth(store)["workspaces"]


def test_sizes_with_tenants():
    assert split_size("large@0.05+200") == ("large@0.05", 200)
    assert split_size("tiny") == ("tiny", 0)
    with pytest.raises(ValueError, match="tenant count"):
        split_size("tiny+many")
    found = specs(SIZE)
    assert [s.workspace for s in found] == ["demo-us-store", "demo-br-store", "demo-saas",
                                            "t0000", "t0001", "t0002", "t0003"]
    assert [s.source for s in found[3:]] == ["shopify", "stripe", "shopify", "stripe"]
    assert history_days(SIZE) == history_days("tiny")  # the tenants live as long as the demo businesses
    assert specs("tiny") == found[:3]  # the demo businesses are the same with or without tenants


def test_every_tenant_has_data_and_truth(found):
    for workspace in ("t0000", "t0002"):
        assert 0 < found[workspace]["counts"]["orders"] < 1000, workspace  # a few orders a day: tiny
    for workspace in ("t0001", "t0003"):
        assert 0 < found[workspace]["counts"]["subscriptions"] < 100, workspace


def test_the_tenants_file_reaches_every_tenant(store, found, tmp_path, monkeypatch):
    sandbox = Sandbox(store)
    sandbox.start()
    try:
        info = sandbox.connection_info()
        for key, value in {**sandbox_env(info), "ABOS_SANDBOX_SHOPIFY_URL": info["shopify"]["base_url"]}.items():
            monkeypatch.setenv(key, value)
        workspaces = load_workspaces(workspaces_file(specs(SIZE), tmp_path / "tenants.yaml"), require_secrets=True)
        assert workspaces.ids == ["t0000", "t0001", "t0002", "t0003"]  # the generated tenants only
        shop, saas = workspaces.get("t0000").connectors["shopify"], workspaces.get("t0001").connectors["stripe"]
        answer = requests.post(f"{shop.base_url}/admin/api/2026-10/graphql.json",
                               json={"query": "{ shop { currencyCode ianaTimezone } }"},
                               headers={"X-Shopify-Access-Token": shop.secret("access_token")}, timeout=30)
        assert answer.json()["data"]["shop"] == {"currencyCode": "USD", "ianaTimezone": "America/New_York"}
        answer = requests.get(f"{saas.base_url}/v1/subscriptions?status=all&limit=100",
                              headers={"Authorization": f"Bearer {saas.secret('api_key')}"}, timeout=30)
        assert len(answer.json()["data"]) == found["t0001"]["counts"]["subscriptions"]
    finally:
        sandbox.stop()
