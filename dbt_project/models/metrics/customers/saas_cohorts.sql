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
            {{ local_date(current_instant(), 'workspaces.timezone') }},
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
        {{ sum_known('starting_mrr') }} as starting_mrr
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

-- each movement's MRR holds at the end of every month from its own month until the month of the
-- customer's next movement (a later movement in the same month takes that month: the span is empty)
spans as (
    select
        movements.workspace_id,
        movements.customer_id,
        cast({{ dbt.date_trunc('month', 'movements.change_date') }} as date) as from_month,
        cast({{ dbt.date_trunc('month', 'lead(movements.change_date) over (partition by movements.workspace_id, movements.customer_id order by movements.change_date)') }} as date) as until_month,
        movements.mrr_after as mrr,
        -- paying after it (MRR > 0 in the billing currency), whether or not a rate converts that MRR
        movements.movement_type <> 'churn' as is_active
    from movements
),

-- what a cohort customer's month-end MRR adds to their cohort's month while a span holds, entered
-- as a delta in its first month and taken out in the month after its last: the month's sums are
-- the running sums of the deltas (one row per movement, not per customer and month). An MRR without
-- an exchange rate is null, and so is every sum it is a term of: the running counts of null terms
-- say where (sum_known's rule, docs/metrics.md "A missing rate").
span_terms as (
    select
        spans.workspace_id,
        starts.cohort_month,
        spans.from_month,
        spans.until_month,
        case when spans.is_active then 1 else 0 end as active_customers,
        spans.mrr,
        -- gross: each customer counts at most what they started with (no expansion); unknown if either is
        case when spans.mrr is null or starts.starting_mrr is null then null
            when spans.mrr < starts.starting_mrr then spans.mrr else starts.starting_mrr end as retained_mrr,
        case when spans.mrr is null or starts.starting_mrr is null then null
            when spans.mrr > starts.starting_mrr then spans.mrr - starts.starting_mrr else 0 end as expansion_mrr
    from spans
    inner join starts
        on starts.workspace_id = spans.workspace_id
        and starts.customer_id = spans.customer_id
    where spans.until_month is null or spans.until_month > spans.from_month
),

deltas as (
    select workspace_id, cohort_month, from_month as activity_month, 1 as sign, active_customers, mrr,
        retained_mrr, expansion_mrr
    from span_terms
    union all
    select workspace_id, cohort_month, until_month as activity_month, -1 as sign, active_customers, mrr,
        retained_mrr, expansion_mrr
    from span_terms
    where until_month is not null
),

month_deltas as (
    select
        workspace_id,
        cohort_month,
        activity_month,
        sum(sign * active_customers) as active_customers,
        {%- for column in ['mrr', 'retained_mrr', 'expansion_mrr'] %}
        sum(sign * {{ column }}) as {{ column }},
        sum(case when {{ column }} is null then sign else 0 end) as {{ column }}_unknown{{ ',' if not loop.last }}
        {%- endfor %}
    from deltas
    group by workspace_id, cohort_month, activity_month
),

running as (
    select
        months.workspace_id,
        months.cohort_month,
        months.activity_month,
        {%- for column in ['active_customers', 'mrr', 'mrr_unknown', 'retained_mrr', 'retained_mrr_unknown',
                           'expansion_mrr', 'expansion_mrr_unknown'] %}
        sum(month_deltas.{{ column }}) over (
            partition by months.workspace_id, months.cohort_month order by months.activity_month
            rows between unbounded preceding and current row
        ) as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from months
    left join month_deltas
        on month_deltas.workspace_id = months.workspace_id
        and month_deltas.cohort_month = months.cohort_month
        and month_deltas.activity_month = months.activity_month
),

monthly as (
    select
        workspace_id,
        cohort_month,
        activity_month,
        coalesce(active_customers, 0) as active_customers,
        case when mrr_unknown = 0 then mrr end as mrr,
        case when retained_mrr_unknown = 0 then retained_mrr end as retained_mrr,
        case when expansion_mrr_unknown = 0 then expansion_mrr end as expansion_mrr
    from running
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
        cast({{ sum_known('monthly.mrr', 'over (partition by monthly.workspace_id, monthly.cohort_month'
                                         ' order by monthly.activity_month)') }}
            / cohorts.cohort_customers as decimal(38, 6)) as cumulative_mrr_per_customer
    from monthly
    inner join cohorts
        on cohorts.workspace_id = monthly.workspace_id
        and cohorts.cohort_month = monthly.cohort_month
    inner join as_of on as_of.workspace_id = monthly.workspace_id
)

select * from final
