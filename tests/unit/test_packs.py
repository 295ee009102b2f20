"""Vertical packs: complete, consistent with the metric tables, and found by vertical."""

import pandas as pd
import pytest

from pipelines.packs import PACKS, Dimension, Metric, Pack, pack_for

# The columns of the metric tables that issue 4 builds, written out here independently.
ECOMMERCE_COLUMNS = {"gross_sales", "discounts", "refunds", "net_sales", "orders", "units", "aov",
                     "new_customers", "returning_customers"}
SAAS_COLUMNS = {"mrr", "arr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr", "reactivation_mrr",
                "net_new_mrr", "active_subscriptions", "active_customers", "new_subscriptions",
                "churned_subscriptions", "arpa"}


def test_registry_has_a_pack_per_vertical_of_workspaces():
    assert set(PACKS) == {"ecommerce", "saas"}
    assert pack_for("ecommerce").table == "ecommerce_daily_metrics"
    assert pack_for("saas").table == "saas_daily_metrics"


@pytest.mark.parametrize("vertical, columns", [("ecommerce", ECOMMERCE_COLUMNS), ("saas", SAAS_COLUMNS)])
def test_pack_metrics_are_exactly_the_metric_table_columns(vertical, columns):
    assert set(pack_for(vertical).metric_names) == columns


@pytest.mark.parametrize("pack", PACKS.values(), ids=list(PACKS))
def test_every_metric_dimension_exists_in_its_pack(pack):
    known = {dimension.name for dimension in pack.dimensions}
    for metric in pack.metrics:
        assert metric.dimensions, f"{metric.name} cannot be explained along any dimension"
        assert set(metric.dimensions) <= known, metric.name


def test_pack_dimensions_are_the_ones_the_product_promises():
    assert [d.name for d in pack_for("ecommerce").dimensions] == ["product", "country", "customer_type"]
    assert [d.name for d in pack_for("saas").dimensions] == ["plan", "movement_type", "billing_currency"]


def test_ratio_metrics_divide_two_signed_sums_of_summed_metrics():
    aov = pack_for("ecommerce").metric("aov")
    assert aov.ratio == ("gross_sales - discounts", "orders")  # docs/metrics.md: AOV after discounts
    assert aov.terms == ((("gross_sales", 1), ("discounts", -1)), (("orders", 1),))
    assert aov.measures == ("gross_sales", "discounts", "orders")
    assert pack_for("saas").metric("arpa").measures == ("mrr", "active_customers")
    assert pack_for("ecommerce").metric("units").measures == ("units",)
    assert pack_for("saas").metric("arpa").aggregation == "ratio"
    assert pack_for("saas").metric("mrr").aggregation == "sum"


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
    # churned and contraction MRR are the MRR lost, positive amounts (docs/metrics.md): more is bad news
    assert not saas.metric("churned_mrr").up_is_good and not saas.metric("contraction_mrr").up_is_good
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
        Pack("web", "web_daily_metrics", (Dimension("country", "country"),),
             (Metric("visits", "Visits", "count", dimensions=("channel",)),))


def test_a_pack_refuses_a_ratio_of_metrics_it_does_not_sum():
    with pytest.raises(ValueError, match="ratio part 'sessions' must be a summed metric"):
        Pack("web", "web_daily_metrics", (), (
            Metric("orders", "Orders", "count"),
            Metric("conversion", "Conversion", "ratio", ratio=("orders", "sessions - orders")),
        ))


def test_a_metric_refuses_an_unknown_unit():
    with pytest.raises(ValueError, match="unit 'dollars'"):
        Metric("revenue", "Revenue", "dollars")
