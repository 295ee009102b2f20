"""The SaaS pack: a Stripe Billing account's MRR, its movements and its customers (saas_daily_metrics)."""

from pipelines.packs import Dimension, Metric, Pack

BY_ITEM = ("plan", "billing_currency")
# Movements are bursty (a few customers a day), so they get a wider band than the MRR level.
# Week over week, they are news only when they double (or vanish).
MOVEMENT = {"sensitivity": 3.5, "change_threshold": 1.0}

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
        # Contraction and churn are the MRR lost, as positive amounts (docs/metrics.md): more is bad news.
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
    ),
)
