"""The metric registry (pipelines/packs): complete, consistent with the dbt models, found by vertical.

The registry is the one declaration of a metric; these tests hold the dbt side to it through the
manifest (dbt_project/target/manifest.json), so adding a metric to one and not the other fails.
"""

import json
import re

import pandas as pd
import pytest

from pipelines.packs import PACKS, Dimension, Metric, Pack, Pair, all_metrics, metric_tables, pack_for, slice_tables
from pipelines.transform import ensure_manifest
from pipelines.transform.registry import REGISTRY_MACRO, registry_macro

KEYS = {"workspace_id", "date"}


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:
    """The dbt models of the `metrics` schema by name, from the manifest."""
    manifest = json.loads(ensure_manifest().read_text())
    return {node["name"]: node for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["schema"] == "metrics"}


def test_registry_has_a_pack_per_vertical_of_workspaces():
    assert set(PACKS) == {"ecommerce", "saas"}
    assert pack_for("ecommerce").table == "ecommerce_daily_metrics"
    assert pack_for("saas").table == "saas_daily_metrics"


def test_every_registry_metric_is_a_documented_column_of_its_dbt_model(models):
    for metric in all_metrics():
        assert metric.table in models, f"{metric.name}: no dbt model {metric.table!r} in the metrics schema"
        assert metric.column in models[metric.table]["columns"], (
            f"{metric.name}: not a documented column of {metric.table} (its SQL and _metrics__models.yml)")


def test_every_metric_column_of_a_registry_table_is_in_the_registry(models):
    registered = {(metric.table, metric.column) for metric in all_metrics()}
    forecasts = {metric.table for metric in all_metrics() if metric.forecast_of}
    for table in metric_tables():
        columns = set(models[table]["columns"]) - KEYS
        if table in forecasts:  # the interval bounds a sum of days cannot use, and the origin, are the view's only
            columns = {column for column in columns if column != "origin" and not re.search(r"_(lower|upper)_\d+$", column)
                       or (table, column) in registered}
        assert {(table, column) for column in columns} <= registered, (
            f"{table} has columns the registry (pipelines/packs) lacks: "
            f"{sorted(column for column in columns if (table, column) not in registered)}")


def test_every_dimension_comes_from_a_slice_table_in_long_form(models):
    for table in slice_tables():
        assert {"workspace_id", "date", "metric", "dimension", "dimension_value", "value"} <= set(
            models[table]["columns"]), table


def test_dbt_reads_the_registry_through_the_generated_macro(models):
    assert REGISTRY_MACRO.read_text() == registry_macro(), "metric_registry.sql is stale: run `abos docs tables`"
    for metric in all_metrics():
        assert f"'{metric.name}': {{'table': '{metric.table}', 'unit': '{metric.unit}'" in registry_macro()
    # the long form unions every registry metric from its table, and nothing else lists them; but
    # the forecasts, written after dbt builds it (their view forecast_metrics reads the registry)
    read = set(models["metric_values"]["depends_on"]["nodes"])
    assert {f"model.abos.{m.table}" for m in all_metrics() if not m.forecast_of} <= read
    assert {f"model.abos.{m.table}" for m in all_metrics() if m.forecast_of} == {"model.abos.forecast_metrics"}
    assert "model.abos.forecast_metrics" not in read
    assert "macro.abos.metric_registry" in models["forecast_metrics"]["depends_on"]["macros"]
    assert "macro.abos.metric_registry" in models["metric_values"]["depends_on"]["macros"]
    for model in ("ecommerce_daily_metrics", "saas_daily_metrics"):  # their ratios come from the registry
        assert "macro.abos.metric_ratio" in models[model]["depends_on"]["macros"], model


@pytest.mark.parametrize("pack", PACKS.values(), ids=list(PACKS))
def test_every_metric_dimension_exists_in_its_pack(pack):
    known = {dimension.name for dimension in pack.dimensions}
    for metric in pack.metrics:
        assert set(metric.dimensions) <= known, metric.name
    # Only the SaaS ratios and their parts (windows over 30 days or the month), the shop's customer
    # base to date and the cohort metrics, listed last, are not split (docs/packs.md); every other
    # metric is explained.
    unexplained = {metric.name for metric in pack.metrics if not metric.dimensions}
    names = pack.metric_names
    first = "subscriber_churn_rate" if pack.vertical == "saas" else "customers_to_date"
    assert unexplained == set(names[names.index(first):])


def test_every_metric_says_how_it_adds_up_over_days():
    saas, ecommerce = pack_for("saas"), pack_for("ecommerce")
    assert ecommerce.metric("net_sales").aggregation == "sum" and saas.metric("new_mrr").aggregation == "sum"
    assert saas.metric("mrr").aggregation == "last" and saas.metric("active_subscriptions").aggregation == "last"
    assert ecommerce.metric("aov").aggregation == "ratio" and saas.metric("arpa").aggregation == "ratio"
    # a ratio's parts add up by their own aggregation: ARPA is the last day's MRR over its customers
    assert [saas.metric(part).aggregation for part in saas.metric("arpa").measures] == ["last", "last"]


def test_synonyms_say_which_metrics_a_word_can_mean():
    churn = [m.name for m in pack_for("saas").metrics if "churn" in m.synonyms]
    assert churn == ["churned_mrr", "churned_subscriptions", "subscriber_churn_rate"]  # a question asks which
    assert "revenue" in pack_for("ecommerce").metric("net_sales").synonyms
    with pytest.raises(ValueError, match="synonyms are lower case"):
        Metric("visits", "Visits", "count", synonyms=("Visits",))


def test_pack_dimensions_are_the_ones_the_product_promises():
    assert [d.name for d in pack_for("ecommerce").dimensions] == ["product", "country", "customer_type", "segment"]
    assert [d.name for d in pack_for("saas").dimensions] == ["plan", "movement_type", "billing_currency"]


def test_ratio_metrics_divide_two_signed_sums_of_summed_metrics():
    aov = pack_for("ecommerce").metric("aov")
    assert aov.ratio == ("gross_sales - discounts", "orders")  # docs/metrics.md: AOV after discounts
    assert aov.terms == ((("gross_sales", 1), ("discounts", -1)), (("orders", 1),))
    assert aov.measures == ("gross_sales", "discounts", "orders")
    assert pack_for("saas").metric("arpa").measures == ("mrr", "active_customers")
    assert pack_for("ecommerce").metric("units").measures == ("units",)
    assert pack_for("saas").metric("subscriber_churn_rate").ratio == ("churned_customers_30d", "customers_at_risk_30d")
    assert pack_for("saas").metric("gross_revenue_retention").measures == ("retained_gross_mrr", "mrr_at_month_start")


def test_a_ratio_is_computed_row_by_row_from_its_parts():
    aov = pack_for("ecommerce").metric("aov")
    frame = pd.DataFrame({"gross_sales": [110.0, 50.0], "discounts": [10.0, 5.0], "orders": [4, 0]})
    numerator, denominator = aov.ratio_parts(frame)
    assert numerator.tolist() == [100.0, 45.0] and denominator.tolist() == [4, 0]
    values = aov.value(frame)
    assert values[0] == 25.0 and pd.isna(values[1])  # no orders: no AOV, not an error
    assert pack_for("ecommerce").metric("units").value(frame.assign(units=[3, 7])).tolist() == [3, 7]


def test_a_ratio_part_must_be_a_signed_sum_of_names():
    with pytest.raises(ValueError, match=r"ratio part 'gmv \* 2' is not a signed sum"):
        Metric("take", "Take", "ratio", ratio=("gmv * 2", "orders"))


def test_bad_news_metrics_say_so():
    saas = pack_for("saas")
    # churned and contraction MRR are positive amounts lost (docs/metrics.md): up is more churn
    assert not saas.metric("churned_mrr").up_is_good and not saas.metric("contraction_mrr").up_is_good
    assert not saas.metric("subscriber_churn_rate").up_is_good and not saas.metric("mrr_churn_rate").up_is_good
    assert saas.metric("net_revenue_retention").up_is_good and saas.metric("trial_conversion_rate").up_is_good
    assert not saas.metric("churned_subscriptions").up_is_good
    assert saas.metric("mrr").up_is_good and saas.metric("mrr").stock
    assert not pack_for("ecommerce").metric("refunds").up_is_good


def test_unknown_vertical_error_names_it_and_the_known_ones():
    with pytest.raises(LookupError, match=r"no pack for vertical 'retail'; known verticals: ecommerce, saas"):
        pack_for("retail")


def test_unknown_metric_error_lists_the_pack_metrics():
    with pytest.raises(LookupError, match="has no metric 'revenue'; it has net_sales, gross_sales"):
        pack_for("ecommerce").metric("revenue")


def test_a_pack_refuses_a_metric_with_an_undeclared_dimension():
    with pytest.raises(ValueError, match=r"metric 'visits': unknown dimensions \['channel'\]"):
        Pack("web", "web_daily_metrics", (Dimension("country", "country", "web_daily_slices"),),
             (Metric("visits", "Visits", "count", dimensions=("channel",)),))


def test_a_pack_refuses_a_pair_it_does_not_declare_or_a_metric_does_not_split_by():
    web = (Dimension("country", "country", "web_slices"), Dimension("device", "device", "web_slices"),
           Dimension("page", "page", "web_slices"))
    pairs = (Pair(("country", "device"), "web_pair_slices"),)
    with pytest.raises(ValueError, match=r"metric 'visits': pair \('country', 'page'\) must be one of the pack's pairs"):
        Pack("web", "web_daily_metrics", web, (Metric("visits", "Visits", "count", dimensions=("country", "page"),
                                                      pairs=(("country", "page"),)),), pairs=pairs)
    with pytest.raises(ValueError, match=r"pair \('device', 'country'\) must be one of the pack's pairs, of the "
                                         "metric's own dimensions"):
        Pack("web", "web_daily_metrics", web, (Metric("visits", "Visits", "count", dimensions=("country",),
                                                      pairs=(("device", "country"),)),), pairs=pairs)
    with pytest.raises(ValueError, match="its part 'sessions' is not split by the pair"):
        Pack("web", "web_daily_metrics", web, (
            Metric("orders", "Orders", "count", dimensions=("country", "device"), pairs=(("country", "device"),)),
            Metric("sessions", "Sessions", "count", dimensions=("country", "device")),
            Metric("conversion", "Conversion", "ratio", ratio=("orders", "sessions"), dimensions=("country", "device"),
                   pairs=(("country", "device"),))), pairs=pairs)
    shop = pack_for("ecommerce")  # either order finds the pair; a metric splits only by its own pairs
    assert shop.pair("country", "product") is not None
    assert shop.pair("country", "product") == shop.pair("product", "country")
    assert shop.splits(shop.metric("aov"), {"country", "customer_type"})
    assert not shop.splits(shop.metric("orders"), {"product", "country"})


def test_a_pack_refuses_a_ratio_of_metrics_it_does_not_sum():
    with pytest.raises(ValueError, match="ratio part 'sessions' must be a summed metric"):
        Pack("web", "web_daily_metrics", (), (
            Metric("orders", "Orders", "count"),
            Metric("conversion", "Conversion", "ratio", ratio=("orders", "sessions - orders")),
        ))


def test_a_metric_refuses_an_unknown_unit():
    with pytest.raises(ValueError, match="unit 'dollars'"):
        Metric("revenue", "Revenue", "dollars")


def test_metrics_dated_by_week_or_cohort_are_read_by_questions_but_not_watched():
    """RFM segments and cohort retention are registry metrics (questions, metric_values) that the
    anomaly scan, drivers and the weekly report leave alone: they have no value every day."""
    ecommerce, saas = pack_for("ecommerce"), pack_for("saas")
    watched = ecommerce.watched()
    assert "segment_customers" in ecommerce.metric_names and "segment_customers" not in watched.metric_names
    assert "customer_retention_m3" not in watched.metric_names and "net_sales" in watched.metric_names
    assert [d.name for d in watched.dimensions] == ["product", "country", "customer_type"]
    assert ecommerce.metric("segment_customers").aggregation == "last"
    assert ecommerce.metric("segment_net_sales").aggregation == "sum"
    assert ecommerce.metric("customer_retention_m3").ratio == ("retained_customers_m3", "cohort_customers_m3")
    assert ecommerce.metric("revenue_retention_m12").ratio == ("cohort_net_sales_m12", "first_month_net_sales_m12")
    assert saas.metric("logo_retention_m1").ratio == ("retained_logos_m1", "cohort_logos_m1")
    assert saas.metric("net_revenue_retention_m6").ratio == ("cohort_mrr_m6", "cohort_starting_mrr_m6")
    assert saas.watched().metric_names == tuple(m.name for m in saas.metrics if m.table == "saas_daily_metrics")
