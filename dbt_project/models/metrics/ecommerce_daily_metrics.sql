{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('ecommerce', 'date') }}"
) }}
{#- The ecommerce metrics of docs/metrics.md, one row per workspace and day (in the workspace's
    timezone), amounts in its reporting currency. Days run from the workspace's first order day to
    its last data day (the latest day with an order placed or changed, or a refund); days without
    orders are zeros. -#}
-- depends_on: {{ ref('int_ecommerce_refresh_windows') }}
-- depends_on: {{ ref('int_ecommerce_refresh_days') }}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

-- not materialized: read through by the filters and joins below (DuckDB would copy the whole table first)
orders as not materialized (
    select * from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

customers as (
    select * from {{ ref('customers') }}
),

-- cancelled orders never count as sold; their refunds still count, on the refund's day
sold_orders as (
    select * from orders
    where not is_cancelled
),

-- the days this run builds (all of them in a full build; macros/incremental_days.sql)
sold_orders_to_build as (
    select * from sold_orders
    where {{ refresh_days('ecommerce', 'sold_orders.workspace_id', 'sold_orders.order_date') }}
),

refunds_to_build as (
    select * from refunds
    where {{ refresh_days('ecommerce', 'refunds.workspace_id', 'refunds.refund_date') }}
),

money as (
    select
        workspace_id,
        order_date as date,
        currency,
        sum(gross_sales) as gross_sales,
        sum(discounts) as discounts,
        cast(0 as decimal(38, 9)) as refunds
    from sold_orders_to_build
    group by workspace_id, order_date, currency

    union all

    select
        workspace_id,
        refund_date as date,
        currency,
        cast(0 as decimal(38, 9)) as gross_sales,
        cast(0 as decimal(38, 9)) as discounts,
        sum(refunded_sales) as refunds
    from refunds_to_build
    group by workspace_id, refund_date, currency
),

money_converted as (
    select
        money.workspace_id,
        money.date,
        {%- for amount in ['gross_sales', 'discounts', 'refunds'] %}
        sum({{ fx_convert('money.' ~ amount, 'money.currency', 'workspaces.reporting_currency', 4) }}) as {{ amount }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from money
    inner join workspaces
        on workspaces.workspace_id = money.workspace_id
    -- the rate of the day itself; a missing rate leaves the amount null, which the tests catch
    {{ fx_rate_joins('money.date', 'money.currency', 'workspaces.reporting_currency') }}
    group by money.workspace_id, money.date
),

order_counts as (
    select
        sold_orders.workspace_id,
        sold_orders.order_date as date,
        count(*) as orders,
        sum(sold_orders.units) as units,
        -- a person counts once a day: new on the day of their first order, returning after it
        count(distinct case
            when customers.first_order_date = sold_orders.order_date then sold_orders.person_id
        end) as new_customers,
        count(distinct case
            when customers.first_order_date < sold_orders.order_date then sold_orders.person_id
        end) as returning_customers
    from sold_orders_to_build as sold_orders
    inner join customers
        on customers.workspace_id = sold_orders.workspace_id
        and customers.person_id = sold_orders.person_id
    group by sold_orders.workspace_id, sold_orders.order_date
),

bounds as (
    select * from {{ ref('int_ecommerce_data_bounds') }}
),

calendar as (
    select * from {{ ref('int_days') }}
),

days as (
    select bounds.workspace_id, calendar.date_day as date
    from bounds
    inner join calendar
        on calendar.date_day >= bounds.first_day
        and calendar.date_day <= bounds.last_day
    where {{ refresh_days('ecommerce', 'bounds.workspace_id', 'calendar.date_day') }}
),

filled as (
    select
        days.workspace_id,
        days.date,
        -- a day with no money rows is zero; a converted null (missing rate) stays null
        case when money_converted.date is null then 0 else money_converted.gross_sales end as gross_sales,
        case when money_converted.date is null then 0 else money_converted.discounts end as discounts,
        case when money_converted.date is null then 0 else money_converted.refunds end as refunds,
        cast(coalesce(order_counts.orders, 0) as bigint) as orders,
        cast(coalesce(order_counts.units, 0) as bigint) as units,
        cast(coalesce(order_counts.new_customers, 0) as bigint) as new_customers,
        cast(coalesce(order_counts.returning_customers, 0) as bigint) as returning_customers
    from days
    left join money_converted
        on money_converted.workspace_id = days.workspace_id
        and money_converted.date = days.date
    left join order_counts
        on order_counts.workspace_id = days.workspace_id
        and order_counts.date = days.date
),

final as (
    select
        workspace_id,
        date,
        cast(gross_sales as decimal(38, 4)) as gross_sales,
        cast(discounts as decimal(38, 4)) as discounts,
        cast(refunds as decimal(38, 4)) as refunds,
        cast(gross_sales - discounts - refunds as decimal(38, 4)) as net_sales,
        orders,
        units,
        -- refunds are not subtracted: they land on other days (docs/metrics.md)
        cast({{ metric_ratio('aov', 4) }} as decimal(38, 4)) as aov,
        new_customers,
        returning_customers
    from filled
)

select * from final
where {{ has_fx_rates('workspace_id', 'ecommerce') }}  -- a missing FX rate leaves the workspace out: docs/metrics.md, Currency
