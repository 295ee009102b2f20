"""The SaaS pack: a Stripe Billing account's MRR, its movements, its customers and its ratios
(saas_daily_metrics)."""

from pipelines.packs import Dimension, Metric, Pack

BY_ITEM = ("plan", "billing_currency")
# Movements are bursty (a few customers a day), so they get a wider band than the MRR level.
# Week over week, they are news only when they double (or vanish).
MOVEMENT = {"sensitivity": 3.5, "change_threshold": 1.0}
# The ratios' parts are levels over the 30 days (or the month) ending each day: a week's figure is
# its last day's. They are not split by a dimension yet (docs/packs.md).
WINDOW = {"stock": True}

PACK = Pack(
    vertical="saas",
    table="saas_daily_metrics",
    dimensions=(
        Dimension("plan", "plan"),
        Dimension("movement_type", "MRR movement"),
        Dimension("billing_currency", "billing currency"),
    ),
    metrics=(
        Metric("mrr", "MRR", "currency", stock=True, dimensions=BY_ITEM),
        Metric("arr", "ARR", "currency", stock=True, dimensions=BY_ITEM),
        Metric("net_new_mrr", "Net new MRR", "currency", can_be_negative=True, **MOVEMENT,
               dimensions=("movement_type", *BY_ITEM)),
        Metric("new_mrr", "New MRR", "currency", **MOVEMENT, dimensions=BY_ITEM),
        Metric("expansion_mrr", "Expansion MRR", "currency", **MOVEMENT, dimensions=BY_ITEM),
        # Contraction and churn are positive amounts of MRR lost (docs/metrics.md): a rise is bad news.
        Metric("contraction_mrr", "Contraction MRR", "currency", up_is_good=False, **MOVEMENT, dimensions=BY_ITEM),
        Metric("churned_mrr", "Churned MRR", "currency", up_is_good=False, **MOVEMENT, dimensions=BY_ITEM),
        Metric("reactivation_mrr", "Reactivation MRR", "currency", **MOVEMENT, dimensions=BY_ITEM),
        Metric("active_subscriptions", "Active subscriptions", "count", stock=True, dimensions=BY_ITEM),
        # A customer pays in one currency but may hold several plans: plan does not split customers.
        Metric("active_customers", "Active customers", "count", stock=True, dimensions=("billing_currency",)),
        Metric("new_subscriptions", "New subscriptions", "count", dimensions=BY_ITEM),
        Metric("churned_subscriptions", "Churned subscriptions", "count", up_is_good=False, **MOVEMENT,
               dimensions=BY_ITEM),
        Metric("arpa", "ARPA", "currency", stock=True, dimensions=("billing_currency",),
               ratio=("mrr", "active_customers")),
        # Stripe's subscriber churn rate and its MRR counterpart, over the last 30 days.
        Metric("subscriber_churn_rate", "Subscriber churn rate", "ratio", up_is_good=False,
               ratio=("churned_customers_30d", "customers_at_risk_30d")),
        Metric("churned_customers_30d", "Customers churned (30 days)", "count", up_is_good=False, **WINDOW),
        Metric("customers_at_risk_30d", "Customers active 30 days ago or since", "count", **WINDOW),
        Metric("mrr_churn_rate", "MRR churn rate", "ratio", up_is_good=False,
               ratio=("churned_mrr_30d", "mrr_at_risk_30d")),
        Metric("churned_mrr_30d", "Churned MRR (30 days)", "currency", up_is_good=False, **WINDOW),
        Metric("mrr_at_risk_30d", "MRR 30 days ago or since", "currency", **WINDOW),
        # Revenue retention of the customers paying when the month began, month to date.
        Metric("net_revenue_retention", "Net revenue retention", "ratio",
               ratio=("retained_mrr", "mrr_at_month_start")),
        Metric("gross_revenue_retention", "Gross revenue retention", "ratio",
               ratio=("retained_gross_mrr", "mrr_at_month_start")),
        Metric("mrr_at_month_start", "MRR at the month's start", "currency", **WINDOW),
        Metric("retained_mrr", "Retained MRR", "currency", **WINDOW),
        Metric("retained_gross_mrr", "Retained MRR without expansion", "currency", **WINDOW),
        Metric("trial_conversion_rate", "Trial conversion rate", "ratio",
               ratio=("trials_converted_30d", "trials_ended_30d")),
        Metric("trials_ended_30d", "Trials ended (30 days)", "count", **WINDOW),
        Metric("trials_converted_30d", "Trials converted (30 days)", "count", **WINDOW),
        # ARPA / subscriber churn rate: a product of two ratios, so a column of its own, never split.
        Metric("ltv", "Customer lifetime value", "currency", **WINDOW),
    ),
)
