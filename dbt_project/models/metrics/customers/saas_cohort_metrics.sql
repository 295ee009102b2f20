{#- Cohort retention as registry metrics (pipelines/packs/saas.py), one row per workspace and first
    paid month, dated on the month's first day: the cohort's size and, for each month N of
    COHORT_MONTHS (pipelines/packs/pack.py), its customers paying at month N's end over its
    customers (logo retention) and its MRR then over its starting MRR (net revenue retention), in
    the reporting currency. Month N counts once it is complete: before the workspace's current
    month; until then its parts are 0 and its ratios null, so sums over cohorts cover the cohorts
    that reached it. -#}
{{ cohort_metrics('saas_cohorts', 'months_since_start', 'cohort_paying_customers', [
    ('logo_retention', ('retained_logos', 'active_customers', 'bigint', false),
                       ('cohort_logos', 'cohort_customers', 'bigint', false)),
    ('net_revenue_retention', ('cohort_mrr', 'mrr', 'decimal(38, 6)', false),
                              ('cohort_starting_mrr', 'starting_mrr', 'decimal(38, 6)', false)),
], 'saas') }}
