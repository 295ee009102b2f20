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
        # the loaded table's name and columns, from the pipeline's schema after the load
        assert metadata["dagster/table_name"].value == f"{source}.{table}"
        columns = {column.name for column in metadata["dagster/column_schema"].value.columns}
        assert {"workspace_id", "id", "_dlt_load_id"} <= columns


def test_bad_credentials_fail_only_that_workspace(definitions, monkeypatch):
    """One run over both shops, as `abos run` and the refresh make it: the shop with a wrong token
    fails alone, named with the setting; the other shop's tables are materialized by the same run."""
    from pipelines.partitions import FAILED_WORKSPACES, fully_materialized
    from pipelines.reliability import run_tags

    monkeypatch.setenv("DEMO_US_STORE_SHOPIFY_TOKEN", "shpat_wrong")
    import pipelines.definitions

    defs = importlib.reload(pipelines.definitions).defs
    graph = defs.resolve_asset_graph()
    assets = [a for a in graph.assets_defs if a.is_materializable]
    keys = [key for a in assets for key in a.keys if (a.group_names_by_key[key] or "") == "ingest_shopify"]
    shops = graph.get(keys[0]).partitions_def.get_partition_keys()
    assert shops == ["demo-us-store", "demo-br-store"]
    instance = dg.DagsterInstance.ephemeral()
    failed = dg.materialize(assets, selection=keys, tags=run_tags(shops), raise_on_error=False, instance=instance)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message + (failure.step_failure_data.user_failure_data.description
                                                         if failure.step_failure_data.user_failure_data else "")
    assert "demo-us-store" in message and "access_token" in message
    assert "shpat_wrong" not in message
    assert failure.step_failure_data.user_failure_data.metadata[FAILED_WORKSPACES].value == "demo-us-store"
    # Not retried: a wrong token fails the same way every time.
    assert not [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert fully_materialized(instance, failed.run_id, keys) == {"demo-br-store"}
    assert set(instance.get_materialized_partitions(dg.AssetKey(["shopify", "orders"]))) == {"demo-br-store"}
