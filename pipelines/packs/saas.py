"""The SaaS pack: a Stripe Billing account's MRR, its movements, its customers and its ratios
(saas_daily_metrics), split by plan, movement type and billing currency (saas_daily_slices), and its
cohorts' month-N logo and net revenue retention (saas_cohort_metrics), and its MRR forecast
(forecast_metrics); these are not watched by the anomaly scan or the report."""

from pipelines.packs.pack import COHORT_MONTHS, Dimension, Metric, Pack, Pair

BY_ITEM = ("plan", "billing_currency")
SLICES = "saas_daily_slices"
PAIR_SLICES = "saas_daily_pair_slices"  # two dimensions at once: saas_daily_pair_slices.sql
ITEM_PAIRS = (("plan", "billing_currency"),)
MOVEMENT_PAIRS = (*ITEM_PAIRS, ("movement_type", "plan"), ("movement_type", "billing_currency"))
# Movements are bursty (a few customers a day), so they get a wider band than the MRR level.
# Week over week, they are news only when they double (or vanish).
MOVEMENT = {"sensitivity": 3.5, "change_threshold": 1.0}
# The ratios' parts are levels over the 30 days (or the month) ending each day: a week's figure is
# its last day's. They are not split by a dimension yet (docs/packs.md).
WINDOW = {"stock": True}
# Cohort retention, one row per cohort dated on its first paid month's first day (docs/metrics.md).
COHORTS = {"table": "saas_cohort_metrics", "watched": False}
# Forecasts of the coming days (insights.forecasts through the view forecast_metrics; docs/metrics.md).
FORECASTS = {"table": "forecast_metrics", "watched": False, "stock": True, "forecast_of": "mrr"}


def _cohort_metrics(month: int) -> tuple[Metric, ...]:
    """Month-N logo and net revenue retention of the cohorts whose month N is complete, and their parts."""
    def cohort(name: str, label: str, unit: str, **fields) -> Metric:
        return Metric(f"{name}_m{month}", label, unit, **COHORTS, **fields)
    return (
        cohort("logo_retention", f"Month-{month} logo retention", "ratio",
               ratio=(f"retained_logos_m{month}", f"cohort_logos_m{month}"),
               synonyms=(f"month {month} retention", f"month {month} logo retention",
                         f"month {month} customer retention", f"{month}-month logo retention",
                         f"{month} month logo retention", f"month-{month} retention")),
        cohort("retained_logos", f"Cohort customers paying at month {month}'s end", "count"),
        cohort("cohort_logos", f"Cohort customers reaching month {month}", "count"),
        cohort("net_revenue_retention", f"Month-{month} net revenue retention", "ratio",
               ratio=(f"cohort_mrr_m{month}", f"cohort_starting_mrr_m{month}"),
               synonyms=(f"month {month} retention", f"month {month} net revenue retention", f"month {month} nrr",
                         f"month {month} revenue retention", f"{month}-month nrr", f"{month} month nrr",
                         f"month-{month} retention")),
        cohort("cohort_mrr", f"Cohorts' MRR at month {month}'s end", "currency"),
        cohort("cohort_starting_mrr", f"Cohorts' starting MRR (month {month} reached)", "currency"),
    )


PACK = Pack(
    vertical="saas",
    table="saas_daily_metrics",
    dimensions=(
        Dimension("plan", "plan", SLICES, synonyms=("plans", "product", "products", "tier", "tiers", "pricing plan")),
        Dimension("movement_type", "MRR movement", SLICES,
                  synonyms=("movement", "movements", "movement type", "mrr movement", "mrr movements", "type")),
        Dimension("billing_currency", "billing currency", SLICES, synonyms=("currency", "currencies")),
    ),
    pairs=tuple(Pair(pair, PAIR_SLICES) for pair in MOVEMENT_PAIRS),
    metrics=(
        Metric("mrr", "MRR", "currency", stock=True, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("monthly recurring revenue", "recurring revenue", "revenue", "monthly revenue")),
        Metric("arr", "ARR", "currency", stock=True, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("annual recurring revenue", "annual run rate", "run rate", "yearly recurring revenue")),
        Metric("net_new_mrr", "Net new MRR", "currency", can_be_negative=True, **MOVEMENT,
               dimensions=("movement_type", *BY_ITEM), pairs=MOVEMENT_PAIRS,
               synonyms=("net mrr", "mrr movements", "net mrr movement")),
        Metric("new_mrr", "New MRR", "currency", **MOVEMENT, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("new business mrr", "mrr from new customers", "new revenue")),
        Metric("expansion_mrr", "Expansion MRR", "currency", **MOVEMENT, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("expansion", "upgrades", "upgrade", "upsell", "upsells", "expansion revenue", "upgrade mrr")),
        # Contraction and churn are positive amounts of MRR lost (docs/metrics.md): a rise is bad news.
        Metric("contraction_mrr", "Contraction MRR", "currency", up_is_good=False, **MOVEMENT, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("contraction", "downgrades", "downgrade", "downsell", "downgrade mrr")),
        Metric("churned_mrr", "Churned MRR", "currency", up_is_good=False, **MOVEMENT, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("churn", "lost mrr", "mrr churned", "churned revenue", "lost revenue", "churn mrr")),
        Metric("reactivation_mrr", "Reactivation MRR", "currency", **MOVEMENT, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("reactivation", "reactivations", "win-backs", "winbacks", "won back mrr", "mrr won back")),
        Metric("active_subscriptions", "Active subscriptions", "count", stock=True, dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("subscriptions", "active subs", "subscription count", "subs")),
        # A customer pays in one currency but may hold several plans: plan does not split customers.
        Metric("active_customers", "Active customers", "count", stock=True, dimensions=("billing_currency",),
               synonyms=("customers", "paying customers", "subscribers", "customer count", "accounts")),
        Metric("new_subscriptions", "New subscriptions", "count", dimensions=BY_ITEM, pairs=ITEM_PAIRS,
               synonyms=("new subscription", "new subs", "signups", "sign-ups", "sign ups")),
        Metric("churned_subscriptions", "Churned subscriptions", "count", up_is_good=False, **MOVEMENT,
               dimensions=BY_ITEM, pairs=ITEM_PAIRS, synonyms=("churn", "cancellations", "cancelled subscriptions",
                                             "canceled subscriptions", "churned subs", "cancels")),
        Metric("arpa", "ARPA", "currency", stock=True, dimensions=("billing_currency",),
               ratio=("mrr", "active_customers"),
               synonyms=("average revenue per account", "average revenue per customer", "arpu", "arpc")),
        # Stripe's subscriber churn rate and its MRR counterpart, over the last 30 days.
        Metric("subscriber_churn_rate", "Subscriber churn rate", "ratio", up_is_good=False,
               ratio=("churned_customers_30d", "customers_at_risk_30d"),
               synonyms=("churn", "churn rate", "customer churn rate", "logo churn", "customer churn")),
        Metric("churned_customers_30d", "Customers churned (30 days)", "count", up_is_good=False, **WINDOW,
               synonyms=("churned customers", "customers lost", "lost customers")),
        Metric("customers_at_risk_30d", "Customers active 30 days ago or since", "count", **WINDOW),
        Metric("mrr_churn_rate", "MRR churn rate", "ratio", up_is_good=False,
               ratio=("churned_mrr_30d", "mrr_at_risk_30d"), synonyms=("revenue churn rate", "revenue churn")),
        Metric("churned_mrr_30d", "Churned MRR (30 days)", "currency", up_is_good=False, **WINDOW),
        Metric("mrr_at_risk_30d", "MRR 30 days ago or since", "currency", **WINDOW),
        # Revenue retention of the customers paying when the month began, month to date.
        Metric("net_revenue_retention", "Net revenue retention", "ratio",
               ratio=("retained_mrr", "mrr_at_month_start"),
               synonyms=("nrr", "net retention", "net dollar retention", "ndr", "retention")),
        Metric("gross_revenue_retention", "Gross revenue retention", "ratio",
               ratio=("retained_gross_mrr", "mrr_at_month_start"),
               synonyms=("grr", "gross retention", "gross dollar retention", "retention")),
        Metric("mrr_at_month_start", "MRR at the month's start", "currency", **WINDOW),
        Metric("retained_mrr", "Retained MRR", "currency", **WINDOW),
        Metric("retained_gross_mrr", "Retained MRR without expansion", "currency", **WINDOW),
        Metric("trial_conversion_rate", "Trial conversion rate", "ratio",
               ratio=("trials_converted_30d", "trials_ended_30d"),
               synonyms=("trial conversion", "trial to paid", "trial-to-paid conversion", "conversion rate")),
        Metric("trials_ended_30d", "Trials ended (30 days)", "count", **WINDOW, synonyms=("ended trials",)),
        Metric("trials_converted_30d", "Trials converted (30 days)", "count", **WINDOW,
               synonyms=("converted trials", "trial conversions")),
        # ARPA / subscriber churn rate: a product of two ratios, so a column of its own, never split.
        Metric("ltv", "Customer lifetime value", "currency", **WINDOW,
               synonyms=("lifetime value", "customer lifetime value", "clv", "cltv")),
        Metric("cohort_paying_customers", "Customers starting to pay (cohort size)", "count", **COHORTS,
               synonyms=("cohort size", "cohort sizes", "new paying customers")),
        *(metric for month in COHORT_MONTHS for metric in _cohort_metrics(month)),
        Metric("mrr_forecast", "MRR forecast", "currency", **FORECASTS,
               synonyms=("projected mrr", "expected mrr", "mrr projection", "revenue forecast")),
        # A level's interval on the period's last day is an interval of the period's figure (a sum
        # of daily bounds is not one of a sum, so the flows' bounds stay in the view only).
        Metric("mrr_forecast_lower_80", "MRR forecast, low end (80%)", "currency", **FORECASTS,
               synonyms=("mrr forecast low", "mrr forecast lower bound", "pessimistic mrr forecast")),
        Metric("mrr_forecast_upper_80", "MRR forecast, high end (80%)", "currency", **FORECASTS,
               synonyms=("mrr forecast high", "mrr forecast upper bound", "optimistic mrr forecast")),
    ),
)
