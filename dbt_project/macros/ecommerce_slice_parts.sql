{#- The parts ecommerce_daily_slices and ecommerce_daily_pair_slices are both sums of, as CTEs
    (after `with`): the workspace's sold orders of the days this run builds, their line amounts with
    the line's three dimensions, those amounts converted per cell (`line_cells`: day, product,
    country, customer type), and one row per person and day (`person_days`). Definitions as in
    ecommerce_daily_metrics (docs/metrics.md). -#}
{% macro ecommerce_slice_parts() -%}
workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

-- not materialized: read through by the filters and joins below (DuckDB would copy the whole table first)
orders as not materialized (
    select * from {{ ref('orders') }}
),

-- not materialized: read through by the filters and joins below (DuckDB would copy the whole table first)
order_lines as not materialized (
    select * from {{ ref('order_lines') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

refund_lines as (
    select * from {{ ref('stg_shopify__refund_lines') }}
),

customers as (
    select * from {{ ref('customers') }}
),

sold_orders as (
    select
        workspace_id,
        order_id,
        person_id,
        order_date,
        coalesce(shipping_country_code, '(none)') as country,
        customer_type
    from orders
    where not is_cancelled
        -- the days this run builds (all of them in a full build; macros/incremental_days.sql)
        and {{ refresh_days('ecommerce', 'orders.workspace_id', 'orders.order_date') }}
),

-- every amount a money metric sums, at line level, with all three dimensions of the line
line_amounts as (
    select
        sold_orders.workspace_id,
        sold_orders.order_date as date,
        order_lines.currency,
        coalesce(order_lines.product_title, '(none)') as product,
        sold_orders.country,
        sold_orders.customer_type,
        order_lines.gross_sales,
        order_lines.discounts,
        cast(0 as decimal(38, 9)) as refunds,
        order_lines.quantity as units
    from order_lines
    inner join sold_orders
        on sold_orders.workspace_id = order_lines.workspace_id
        and sold_orders.order_id = order_lines.order_id

    union all

    select
        refunds.workspace_id,
        refunds.refund_date as date,
        refunds.currency,
        coalesce(order_lines.product_title, '(none)') as product,
        coalesce(orders.shipping_country_code, '(none)') as country,
        coalesce(orders.customer_type, '(none)') as customer_type,
        cast(0 as decimal(38, 9)) as gross_sales,
        cast(0 as decimal(38, 9)) as discounts,
        refund_lines.subtotal as refunds,
        0 as units
    from refund_lines
    inner join refunds
        on refunds.workspace_id = refund_lines.workspace_id
        and refunds.refund_id = refund_lines.refund_id
    left join order_lines
        on order_lines.workspace_id = refund_lines.workspace_id
        and order_lines.order_line_id = refund_lines.order_line_id
    left join orders
        on orders.workspace_id = refunds.workspace_id
        and orders.order_id = refunds.order_id
    where {{ refresh_days('ecommerce', 'refunds.workspace_id', 'refunds.refund_date') }}
),

-- converted per cell (day, product, country, customer type) and currency, as
-- ecommerce_daily_metrics converts per day: every slice and pair slice is a sum of these cells, so
-- slices along one dimension and pairs along two add up to each other exactly.
line_cells as (
    select
        line_totals.workspace_id,
        line_totals.date,
        line_totals.product,
        line_totals.country,
        line_totals.customer_type,
        {%- for amount in ['gross_sales', 'discounts', 'refunds'] %}
        sum({{ fx_convert('line_totals.' ~ amount, 'line_totals.currency', 'workspaces.reporting_currency', 4) }}) as {{ amount }},
        {%- endfor %}
        sum(line_totals.units) as units
    from (
        select workspace_id, date, currency, product, country, customer_type,
            sum(gross_sales) as gross_sales, sum(discounts) as discounts, sum(refunds) as refunds, sum(units) as units
        from line_amounts
        group by workspace_id, date, currency, product, country, customer_type
    ) as line_totals
    inner join workspaces
        on workspaces.workspace_id = line_totals.workspace_id
    {{ fx_rate_joins('line_totals.date', 'line_totals.currency', 'workspaces.reporting_currency') }}
    group by line_totals.workspace_id, line_totals.date, line_totals.product, line_totals.country,
        line_totals.customer_type
),

-- one row per person and day they ordered, as ecommerce_daily_metrics counts people
person_days as (
    select
        sold_orders.workspace_id,
        sold_orders.order_date as date,
        sold_orders.person_id,
        min(sold_orders.country) as country,
        max(case when customers.first_order_date = sold_orders.order_date then 1 else 0 end) as is_new,
        max(case when customers.first_order_date < sold_orders.order_date then 1 else 0 end) as is_returning
    from sold_orders
    inner join customers
        on customers.workspace_id = sold_orders.workspace_id
        and customers.person_id = sold_orders.person_id
    group by sold_orders.workspace_id, sold_orders.order_date, sold_orders.person_id
)
{%- endmacro %}
