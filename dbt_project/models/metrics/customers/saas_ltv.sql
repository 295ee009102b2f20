{#- SaaS lifetime value from ARPA and churn, one row per workspace and month (docs/metrics.md,
    "Customer analytics"): ARPA at the month's end over the trailing three months' logo churn rate. -#}
with cohorts as (
    select * from {{ ref('saas_cohorts') }}
),

churns as (
    select
        workspace_id,
        cast({{ dbt.date_trunc('month', 'change_date') }} as date) as activity_month,
        count(*) as churned_customers
    from {{ ref('mrr_movements') }}
    where movement_type = 'churn'
    group by workspace_id, cast({{ dbt.date_trunc('month', 'change_date') }} as date)
),

monthly as (
    select
        workspace_id,
        activity_month,
        max(reporting_currency) as reporting_currency,
        sum(active_customers) as active_customers,
        {{ sum_known('mrr') }} as mrr
    from cohorts
    group by workspace_id, activity_month
),

with_churn as (
    select
        monthly.*,
        coalesce(lag(monthly.active_customers) over (
            partition by monthly.workspace_id order by monthly.activity_month
        ), 0) as customers_at_start,
        coalesce(churns.churned_customers, 0) as churned_customers
    from monthly
    left join churns
        on churns.workspace_id = monthly.workspace_id
        and churns.activity_month = monthly.activity_month
),

smoothed as (
    select
        *,
        -- three months smooth out a single month's luck; rows, not dates: every month has a row
        sum(churned_customers) over (
            partition by workspace_id order by activity_month rows between 2 preceding and current row
        ) as churned_3m,
        sum(customers_at_start) over (
            partition by workspace_id order by activity_month rows between 2 preceding and current row
        ) as customers_at_start_3m
    from with_churn
),

final as (
    select
        workspace_id,
        activity_month,
        reporting_currency,
        cast(active_customers as bigint) as active_customers,
        cast(mrr as decimal(38, 6)) as mrr,
        cast(case when active_customers > 0 then mrr / active_customers end as decimal(38, 6)) as arpa,
        cast(churned_customers as bigint) as churned_customers,
        cast(customers_at_start as bigint) as customers_at_start,
        cast(case when customers_at_start_3m > 0 then 1.0 * churned_3m / customers_at_start_3m end
            as decimal(18, 6)) as monthly_churn_rate_3m,
        -- ARPA / churn: the expected revenue of a customer over their expected lifetime (1 / churn
        -- months); null without churn, where the formula has no finite answer
        cast(case when active_customers > 0 and churned_3m > 0
            then (mrr / active_customers) * customers_at_start_3m / churned_3m end as decimal(38, 6)) as ltv
    from smoothed
)

select * from final
