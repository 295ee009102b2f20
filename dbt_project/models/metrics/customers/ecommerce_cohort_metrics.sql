{#- Cohort retention as registry metrics (pipelines/packs/ecommerce.py), one row per workspace and
    first-order month, dated on the month's first day: the cohort's size and, for each month N of
    COHORT_MONTHS (pipelines/packs/pack.py), its customers buying in month N over its customers
    (customer retention) and its net sales in month N over its month-0 net sales (revenue
    retention). Month N counts once it is complete: before the workspace's last data month; until
    then its parts are 0 and its ratios null, so sums over cohorts cover the cohorts that reached it. -#}
{%- set months = [1, 3, 6, 12] -%}
with cohorts as (
    select * from {{ ref('ecommerce_cohorts') }}
),

last_months as (
    select workspace_id, max(activity_month) as last_month
    from cohorts
    group by workspace_id
),

parts as (
    select
        cohorts.workspace_id,
        cohorts.cohort_month as date,
        max(cohorts.cohort_customers) as cohort_customers,
        {%- for month in months %}
        {%- set reached = "cohorts.months_since_first_order = " ~ month ~ " and cohorts.activity_month < last_months.last_month" %}
        sum(case when {{ reached }} then cohorts.active_customers else 0 end) as retained_customers_m{{ month }},
        sum(case when {{ reached }} then cohorts.cohort_customers else 0 end) as cohort_customers_m{{ month }},
        sum(case when {{ reached }} then cohorts.net_sales else 0 end) as cohort_net_sales_m{{ month }},
        -- month 0's net sales, counted once month N is reached
        max(case when cohorts.months_since_first_order = 0 and cohorts.cohort_month < {{ dbt.dateadd('month', -month, 'last_months.last_month') }}
            then cohorts.net_sales else 0 end) as first_month_net_sales_m{{ month }}{{ "," if not loop.last }}
        {%- endfor %}
    from cohorts
    inner join last_months on last_months.workspace_id = cohorts.workspace_id
    group by cohorts.workspace_id, cohorts.cohort_month
),

final as (
    select
        workspace_id,
        date,
        cast(cohort_customers as bigint) as cohort_customers,
        {%- for month in months %}
        cast({{ metric_ratio('customer_retention_m' ~ month) }} as decimal(18, 6)) as customer_retention_m{{ month }},
        cast(retained_customers_m{{ month }} as bigint) as retained_customers_m{{ month }},
        cast(cohort_customers_m{{ month }} as bigint) as cohort_customers_m{{ month }},
        cast({{ metric_ratio('revenue_retention_m' ~ month) }} as decimal(18, 6)) as revenue_retention_m{{ month }},
        cast(cohort_net_sales_m{{ month }} as decimal(38, 4)) as cohort_net_sales_m{{ month }},
        cast(first_month_net_sales_m{{ month }} as decimal(38, 4)) as first_month_net_sales_m{{ month }}{{ "," if not loop.last }}
        {%- endfor %}
    from parts
    -- a workspace missing an exchange rate has no figures (int_fx_rate_gaps fails it), as in ecommerce_daily_metrics
    where {{ has_fx_rates('workspace_id', 'ecommerce') }}
)

select * from final
