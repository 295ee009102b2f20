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
