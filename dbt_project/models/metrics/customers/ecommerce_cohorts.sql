{#- Customers by first-order month (in the shop's timezone), one row per workspace, cohort and month
    since that first order, up to the workspace's last data month (docs/metrics.md, "Cohorts").
    Amounts are in the shop's currency, and reporting_net_sales is net_sales in the workspace's
    reporting currency, each order and refund converted at its own day's rate (the registry's cohort
    money reads it); refunds count in the month they are made. The last month of a workspace is
    usually still running.

    The per-person work (first and second orders, each order and refund converted) is in
    int_ecommerce_cohort_activity, which an incremental run rebuilds for the people and months it
    changed; this sums it per cohort and month. -#}
with recursive workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

customers as (
    select * from {{ ref('customers') }}
),

-- one row per customer with a first sold order, and one per such customer and month with activity
people as (
    select workspace_id, person_id, cohort_month, first_order_date, second_order_date
    from {{ ref('int_ecommerce_cohort_activity') }}
    where activity_month is null
),

activity as (
    select workspace_id, cohort_month, activity_month, is_active, orders, net_sales, reporting_net_sales
    from {{ ref('int_ecommerce_cohort_activity') }}
    where activity_month is not null
),

last_months as (
    select workspace_id, max(activity_month) as last_month
    from activity
    group by workspace_id
),

cohorts as (
    select
        people.workspace_id,
        people.cohort_month,
        count(*) as cohort_customers,
        avg(cast({{ dbt.datediff('people.first_order_date', 'people.second_order_date', 'day') }} as decimal(18, 6)))
            as avg_days_to_second_order
    from people
    group by people.workspace_id, people.cohort_month
),

currencies as (
    select workspace_id, max(currency) as currency
    from customers
    group by workspace_id
),

-- every month from the cohort's first to the workspace's last, so quiet months show as zeros
months (workspace_id, cohort_month, activity_month, last_month) as (
    select cohorts.workspace_id, cohorts.cohort_month, cohorts.cohort_month, last_months.last_month
    from cohorts
    inner join last_months on last_months.workspace_id = cohorts.workspace_id
    union all
    select workspace_id, cohort_month, cast({{ dbt.dateadd('month', 1, 'activity_month') }} as date), last_month
    from months
    where activity_month < last_month
),

monthly as (
    select
        workspace_id,
        cohort_month,
        activity_month,
        cast(sum(is_active) as bigint) as active_customers,
        cast(sum(orders) as bigint) as orders,
        cast(sum(net_sales) as decimal(38, 9)) as net_sales,
        cast({{ sum_known('reporting_net_sales') }} as decimal(38, 4)) as reporting_net_sales
    from activity
    group by workspace_id, cohort_month, activity_month
),

-- each cohort's customers by the month of their second sold order
second_months as (
    select
        workspace_id,
        cohort_month,
        cast({{ dbt.date_trunc('month', 'second_order_date') }} as date) as second_month,
        count(*) as customers
    from people
    where second_order_date is not null
    group by workspace_id, cohort_month, cast({{ dbt.date_trunc('month', 'second_order_date') }} as date)
),

-- the cohort's customers whose second order was by then
repeats as (
    select
        months.workspace_id,
        months.cohort_month,
        months.activity_month,
        cast(coalesce(sum(second_months.customers), 0) as bigint) as repeat_customers
    from months
    left join second_months
        on second_months.workspace_id = months.workspace_id
        and second_months.cohort_month = months.cohort_month
        and second_months.second_month <= months.activity_month
    group by months.workspace_id, months.cohort_month, months.activity_month
),

summed as (
    select
        months.workspace_id,
        months.cohort_month,
        months.activity_month,
        currencies.currency,
        cohorts.cohort_customers,
        coalesce(monthly.active_customers, 0) as active_customers,
        coalesce(monthly.orders, 0) as orders,
        coalesce(monthly.net_sales, 0) as net_sales,
        sum(coalesce(monthly.net_sales, 0)) over (
            partition by months.workspace_id, months.cohort_month order by months.activity_month
        ) as cumulative_net_sales,
        workspaces.reporting_currency,
        -- a quiet month is 0; a month whose money has no rate stays null (unknown)
        case when monthly.activity_month is null then 0 else monthly.reporting_net_sales end as reporting_net_sales,
        repeats.repeat_customers,
        cohorts.avg_days_to_second_order
    from months
    inner join cohorts
        on cohorts.workspace_id = months.workspace_id
        and cohorts.cohort_month = months.cohort_month
    inner join currencies on currencies.workspace_id = months.workspace_id
    inner join workspaces on workspaces.workspace_id = months.workspace_id
    inner join repeats
        on repeats.workspace_id = months.workspace_id
        and repeats.cohort_month = months.cohort_month
        and repeats.activity_month = months.activity_month
    left join monthly
        on monthly.workspace_id = months.workspace_id
        and monthly.cohort_month = months.cohort_month
        and monthly.activity_month = months.activity_month
),

-- the ratios exact and rounded half away from zero, the same digits on DuckDB and Postgres (exact_ratio)
final as (
    select
        workspace_id,
        cohort_month,
        cast({{ dbt.datediff('cohort_month', 'activity_month', 'month') }} as integer) as months_since_first_order,
        activity_month,
        currency,
        cast(cohort_customers as bigint) as cohort_customers,
        cast(active_customers as bigint) as active_customers,
        cast(orders as bigint) as orders,
        cast(net_sales as decimal(38, 4)) as net_sales,
        cast(cumulative_net_sales as decimal(38, 4)) as cumulative_net_sales,
        {{ exact_ratio('cumulative_net_sales', 'cohort_customers', 6) }} as cumulative_net_sales_per_customer,
        reporting_currency,
        cast(reporting_net_sales as decimal(38, 4)) as reporting_net_sales,
        cast({{ exact_ratio('active_customers', 'cohort_customers', 6) }} as decimal(18, 6)) as retention_rate,
        cast(repeat_customers as bigint) as repeat_customers,
        cast({{ exact_ratio('repeat_customers', 'cohort_customers', 6) }} as decimal(18, 6)) as repeat_purchase_rate,
        cast(avg_days_to_second_order as decimal(18, 2)) as avg_days_to_second_order
    from summed
)

select * from final
