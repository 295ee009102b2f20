{#- Cohort retention as registry metrics (pipelines/packs/saas.py), one row per workspace and first
    paid month, dated on the month's first day: the cohort's size and, for each month N of
    COHORT_MONTHS (pipelines/packs/pack.py), its customers paying at month N's end over its
    customers (logo retention) and its MRR then over its starting MRR (net revenue retention), in
    the reporting currency. Month N counts once it is complete: before the workspace's current
    month; until then its parts are 0 and its ratios null, so sums over cohorts cover the cohorts
    that reached it. -#}
{%- set months = [1, 3, 6, 12] -%}
with cohorts as (
    select * from {{ ref('saas_cohorts') }}
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
        max(cohorts.cohort_customers) as cohort_paying_customers,
        {%- for month in months %}
        {%- set reached = "cohorts.months_since_start = " ~ month ~ " and cohorts.activity_month < last_months.last_month" %}
        sum(case when {{ reached }} then cohorts.active_customers else 0 end) as retained_logos_m{{ month }},
        sum(case when {{ reached }} then cohorts.cohort_customers else 0 end) as cohort_logos_m{{ month }},
        sum(case when {{ reached }} then cohorts.mrr else 0 end) as cohort_mrr_m{{ month }},
        sum(case when {{ reached }} then cohorts.starting_mrr else 0 end) as cohort_starting_mrr_m{{ month }}{{ "," if not loop.last }}
        {%- endfor %}
    from cohorts
    inner join last_months on last_months.workspace_id = cohorts.workspace_id
    group by cohorts.workspace_id, cohorts.cohort_month
),

final as (
    select
        workspace_id,
        date,
        cast(cohort_paying_customers as bigint) as cohort_paying_customers,
        {%- for month in months %}
        cast({{ metric_ratio('logo_retention_m' ~ month) }} as decimal(18, 6)) as logo_retention_m{{ month }},
        cast(retained_logos_m{{ month }} as bigint) as retained_logos_m{{ month }},
        cast(cohort_logos_m{{ month }} as bigint) as cohort_logos_m{{ month }},
        cast({{ metric_ratio('net_revenue_retention_m' ~ month) }} as decimal(18, 6)) as net_revenue_retention_m{{ month }},
        cast(cohort_mrr_m{{ month }} as decimal(38, 6)) as cohort_mrr_m{{ month }},
        cast(cohort_starting_mrr_m{{ month }} as decimal(38, 6)) as cohort_starting_mrr_m{{ month }}{{ "," if not loop.last }}
        {%- endfor %}
    from parts
    -- a workspace missing an exchange rate has no figures (int_fx_rate_gaps fails it), as in saas_daily_metrics
    where {{ has_fx_rates('workspace_id', 'saas') }}
)

select * from final
