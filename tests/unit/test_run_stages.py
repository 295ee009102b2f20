import dagster as dg

from pipelines.run import _stages

WORKSPACES = dg.StaticPartitionsDefinition(["a", "b"])
SHOPS = dg.StaticPartitionsDefinition(["a"])


@dg.asset(partitions_def=SHOPS)
def raw_orders() -> None: ...


@dg.asset(partitions_def=WORKSPACES)
def raw_invoices() -> None: ...


@dg.asset(deps=[raw_orders, raw_invoices])
def metrics() -> None: ...


@dg.asset(partitions_def=WORKSPACES, deps=[metrics])
def anomalies() -> None: ...


def test_stages_run_each_partitions_definition_after_what_it_reads():
    stages = _stages([anomalies, metrics, raw_invoices, raw_orders])
    names = [(partitions, sorted(key.to_user_string() for key in keys)) for partitions, keys in stages]
    # The raw tables' runs come first (in any order), then the shared model, then the insights.
    assert sorted(names[:2], key=lambda item: item[1]) == [(WORKSPACES, ["raw_invoices"]), (SHOPS, ["raw_orders"])]
    assert names[2:] == [(None, ["metrics"]), (WORKSPACES, ["anomalies"])]


@dg.asset
def reference() -> None: ...


@dg.multi_asset(specs=[dg.AssetSpec("stg_orders", deps=[reference]), dg.AssetSpec("stg_invoices", deps=[raw_invoices]),
                       dg.AssetSpec("daily", deps=["stg_orders", "stg_invoices"])])
def models():
    return None


@dg.asset(partitions_def=WORKSPACES, deps=["daily"])
def report() -> None: ...


def test_a_multi_asset_runs_whole_in_one_stage_even_where_only_some_of_its_assets_read_partitioned_tables():
    """A SaaS-only deployment: no Shopify assets, so the Shopify staging models read nothing partitioned,
    yet they build in the same `dbt build` as the rest, after the Stripe tables."""
    stages = _stages([report, models, raw_invoices, reference])
    names = [(partitions, sorted(key.to_user_string() for key in keys)) for partitions, keys in stages]
    assert sorted(names[:2], key=lambda item: item[1]) == [(WORKSPACES, ["raw_invoices"]), (None, ["reference"])]
    assert names[2:] == [(None, ["daily", "stg_invoices", "stg_orders"]), (WORKSPACES, ["report"])]
