{#- Cohort retention as registry metrics (pipelines/packs/ecommerce.py), one row per workspace and
    first-order month, dated on the month's first day: the cohort's size and, for each month N of
    COHORT_MONTHS (pipelines/packs/pack.py), its customers buying in month N over its customers
    (customer retention) and its net sales in month N over its month-0 net sales (revenue
    retention), in the reporting currency. Month N counts once it is complete: before the workspace's last data month; until
    then its parts are 0 and its ratios null, so sums over cohorts cover the cohorts that reached it. -#}
{{ cohort_metrics('ecommerce_cohorts', 'months_since_first_order', 'cohort_customers', [
    ('customer_retention', ('retained_customers', 'active_customers', 'bigint', false),
                           ('cohort_customers', 'cohort_customers', 'bigint', false)),
    ('revenue_retention', ('cohort_net_sales', 'reporting_net_sales', 'decimal(38, 4)', false),
                          ('first_month_net_sales', 'reporting_net_sales', 'decimal(38, 4)', true)),
], 'ecommerce') }}
