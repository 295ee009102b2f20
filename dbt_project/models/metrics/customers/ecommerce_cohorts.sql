{#- Customers by first-order month (in the shop's timezone), one row per workspace, cohort and month
    since that first order, up to the workspace's last data month (docs/metrics.md, "Cohorts").
    Amounts are in the shop's currency, and reporting_net_sales is net_sales in the workspace's
    reporting currency, each order and refund converted at its own day's rate (the registry's cohort
    money reads it); refunds count in the month they are made. The last month of a workspace is
    usually still running. -#}
with recursive workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

customers as (
    select * from {{ ref('customers') }}
),

orders as (
    select * from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

ranked_orders as (
    select
        workspace_id,
        person_id,
        order_date,
        discounted_sales,
        currency,
        row_number() over (partition by workspace_id, person_id order by created_at, order_id) as order_number
    from orders
    where not is_cancelled
),

people as (
    select
        customers.workspace_id,
        customers.person_id,
        cast({{ dbt.date_trunc('month', 'customers.first_order_date') }} as date) as cohort_month,
        customers.first_order_date,
        second_orders.order_date as second_order_date
    from customers
    left join ranked_orders as second_orders
        on second_orders.workspace_id = customers.workspace_id
        and second_orders.person_id = customers.person_id
        and second_orders.order_number = 2
    where customers.first_order_date is not null
),

-- what happened on which day: sold orders (the buyer is active) and refunds (money only)
dated as (
    select
        ranked_orders.workspace_id,
        ranked_orders.person_id as active_person_id,
        people.cohort_month,
        ranked_orders.order_date as day,
        ranked_orders.currency,
        1 as orders,
        ranked_orders.discounted_sales as net_sales
    from ranked_orders
    inner join people
        on people.workspace_id = ranked_orders.workspace_id
        and people.person_id = ranked_orders.person_id

    union all

    select
        refunds.workspace_id,
        null as active_person_id,
        people.cohort_month,
        refunds.refund_date as day,
        refunds.currency,
        0 as orders,
        -refunds.refunded_sales as net_sales
    from refunds
    inner join people
        on people.workspace_id = refunds.workspace_id
        and people.person_id = refunds.person_id
),

-- each order and refund also in the reporting currency, at its day's rate (a missing rate: null,
-- and int_fx_rate_gaps_ecommerce keeps the workspace out of the cohort metrics)
activity as (
    select
        dated.workspace_id,
        dated.active_person_id,
        dated.cohort_month,
        cast({{ dbt.date_trunc('month', 'dated.day') }} as date) as activity_month,
        dated.orders,
        dated.net_sales,
        {{ fx_convert('dated.net_sales', 'dated.currency', 'workspaces.reporting_currency', 4) }} as reporting_net_sales
    from dated
    inner join workspaces on workspaces.workspace_id = dated.workspace_id
    {{ fx_rate_joins('dated.day', 'dated.currency', 'workspaces.reporting_currency') }}
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
        count(distinct active_person_id) as active_customers,
        sum(orders) as orders,
        sum(net_sales) as net_sales,
        sum(reporting_net_sales) as reporting_net_sales
    from activity
    group by workspace_id, cohort_month, activity_month
),

repeats as (
    select
        months.workspace_id,
        months.cohort_month,
        months.activity_month,
        count(people.person_id) as repeat_customers
    from months
    left join people
        on people.workspace_id = months.workspace_id
        and people.cohort_month = months.cohort_month
        and cast({{ dbt.date_trunc('month', 'people.second_order_date') }} as date) <= months.activity_month
    group by months.workspace_id, months.cohort_month, months.activity_month
),

final as (
    select
        months.workspace_id,
        months.cohort_month,
        cast({{ dbt.datediff('months.cohort_month', 'months.activity_month', 'month') }} as integer)
            as months_since_first_order,
        months.activity_month,
        currencies.currency,
        cast(cohorts.cohort_customers as bigint) as cohort_customers,
        cast(coalesce(monthly.active_customers, 0) as bigint) as active_customers,
        cast(coalesce(monthly.orders, 0) as bigint) as orders,
        cast(coalesce(monthly.net_sales, 0) as decimal(38, 4)) as net_sales,
        cast(sum(coalesce(monthly.net_sales, 0)) over (
            partition by months.workspace_id, months.cohort_month order by months.activity_month
        ) as decimal(38, 4)) as cumulative_net_sales,
        cast(sum(coalesce(monthly.net_sales, 0)) over (
            partition by months.workspace_id, months.cohort_month order by months.activity_month
        ) / cohorts.cohort_customers as decimal(38, 6)) as cumulative_net_sales_per_customer,
        workspaces.reporting_currency,
        cast(coalesce(monthly.reporting_net_sales, 0) as decimal(38, 4)) as reporting_net_sales,
        cast(1.0 * coalesce(monthly.active_customers, 0) / cohorts.cohort_customers as decimal(18, 6))
            as retention_rate,
        cast(repeats.repeat_customers as bigint) as repeat_customers,
        cast(1.0 * repeats.repeat_customers / cohorts.cohort_customers as decimal(18, 6)) as repeat_purchase_rate,
        cast(cohorts.avg_days_to_second_order as decimal(18, 2)) as avg_days_to_second_order
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
)

select * from final
