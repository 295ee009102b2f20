{#- SaaS customers by first paid month (the month of their first MRR movement, in the workspace's
    timezone), one row per workspace, cohort month and month since that start, up to the
    workspace's current month (docs/metrics.md, "Cohorts"). Built on mrr_movements' change points:
    a customer's MRR at a month's end is the mrr_after of their last movement by then. Amounts in
    the reporting currency, each at its change day's rate. -#}
with recursive workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

movements as (
    select * from {{ ref('mrr_movements') }}
),

first_paid as (
    select workspace_id, customer_id, min(change_date) as first_paid_date
    from movements
    group by workspace_id, customer_id
),

-- each customer's cohort and the MRR they started with (their first movement, always `new`)
starts as (
    select
        movements.workspace_id,
        movements.customer_id,
        cast({{ dbt.date_trunc('month', 'movements.change_date') }} as date) as cohort_month,
        movements.mrr_after as starting_mrr
    from movements
    inner join first_paid
        on first_paid.workspace_id = movements.workspace_id
        and first_paid.customer_id = movements.customer_id
        and first_paid.first_paid_date = movements.change_date
),

-- today in the workspace's timezone (or its newest movement's day, if a load is from the future)
as_of as (
    select
        workspaces.workspace_id,
        workspaces.reporting_currency,
        greatest(
            {{ local_date(dbt.current_timestamp(), 'workspaces.timezone') }},
            max(movements.change_date)
        ) as as_of_day
    from workspaces
    inner join movements on movements.workspace_id = workspaces.workspace_id
    group by workspaces.workspace_id, workspaces.reporting_currency, workspaces.timezone
),

cohorts as (
    select
        workspace_id,
        cohort_month,
        count(*) as cohort_customers,
        sum(starting_mrr) as starting_mrr
    from starts
    group by workspace_id, cohort_month
),

months (workspace_id, cohort_month, activity_month, last_month) as (
    select cohorts.workspace_id, cohorts.cohort_month, cohorts.cohort_month,
        cast({{ dbt.date_trunc('month', 'as_of.as_of_day') }} as date)
    from cohorts
    inner join as_of on as_of.workspace_id = cohorts.workspace_id
    union all
    select workspace_id, cohort_month, cast({{ dbt.dateadd('month', 1, 'activity_month') }} as date), last_month
    from months
    where activity_month < last_month
),

-- every cohort customer's MRR at the end of every month since their start (the month so far for
-- the current one)
customer_months as (
    select
        starts.workspace_id,
        starts.customer_id,
        starts.cohort_month,
        starts.starting_mrr,
        months.activity_month,
        movements.mrr_after as mrr,
        row_number() over (
            partition by starts.workspace_id, starts.customer_id, months.activity_month
            order by movements.change_date desc
        ) as recency
    from starts
    inner join months
        on months.workspace_id = starts.workspace_id
        and months.cohort_month = starts.cohort_month
    inner join movements
        on movements.workspace_id = starts.workspace_id
        and movements.customer_id = starts.customer_id
        and movements.change_date < {{ dbt.dateadd('month', 1, 'months.activity_month') }}
),

monthly as (
    select
        workspace_id,
        cohort_month,
        activity_month,
        sum(case when mrr > 0 then 1 else 0 end) as active_customers,
        sum(mrr) as mrr,
        -- gross: each customer counts at most what they started with (no expansion)
        sum(case when mrr < starting_mrr then mrr else starting_mrr end) as retained_mrr,
        sum(case when mrr > starting_mrr then mrr - starting_mrr else 0 end) as expansion_mrr
    from customer_months
    where recency = 1
    group by workspace_id, cohort_month, activity_month
),

final as (
    select
        monthly.workspace_id,
        monthly.cohort_month,
        cast({{ dbt.datediff('monthly.cohort_month', 'monthly.activity_month', 'month') }} as integer)
            as months_since_start,
        monthly.activity_month,
        as_of.reporting_currency,
        cast(cohorts.cohort_customers as bigint) as cohort_customers,
        cast(monthly.active_customers as bigint) as active_customers,
        cast(cohorts.starting_mrr as decimal(38, 6)) as starting_mrr,
        cast(monthly.mrr as decimal(38, 6)) as mrr,
        cast(monthly.expansion_mrr as decimal(38, 6)) as expansion_mrr,
        cast(1.0 * monthly.active_customers / cohorts.cohort_customers as decimal(18, 6)) as logo_retention,
        cast(case when cohorts.starting_mrr > 0 then monthly.mrr / cohorts.starting_mrr end as decimal(18, 6))
            as net_revenue_retention,
        cast(case when cohorts.starting_mrr > 0 then monthly.retained_mrr / cohorts.starting_mrr end
            as decimal(18, 6)) as gross_revenue_retention,
        -- revenue the cohort has booked so far (Σ month-end MRR), per customer: historical LTV
        cast(sum(monthly.mrr) over (
            partition by monthly.workspace_id, monthly.cohort_month order by monthly.activity_month
        ) / cohorts.cohort_customers as decimal(38, 6)) as cumulative_mrr_per_customer
    from monthly
    inner join cohorts
        on cohorts.workspace_id = monthly.workspace_id
        and cohorts.cohort_month = monthly.cohort_month
    inner join as_of on as_of.workspace_id = monthly.workspace_id
)

select * from final
