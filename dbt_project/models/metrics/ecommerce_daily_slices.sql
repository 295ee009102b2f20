{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('ecommerce', 'date') }}"
) }}
{#- The ecommerce metrics of ecommerce_daily_metrics split by the pack's dimensions (pipelines/packs):
    one row per workspace, day, metric, dimension and dimension value, in long form. Same
    definitions as docs/metrics.md: days in the workspace's timezone, amounts in its reporting
    currency, cancelled orders not sold, refunds on the refund's own day. The slices of a metric
    along one dimension add up to the metric (to 4 decimals per slice where money is converted).
    - product (line amounts and units; refunds by the refunded line's product),
    - country (the order's shipping country), customer_type (the order's: new or returning),
    - orders by country and customer_type; new and returning customers by country (a person
      counts once a day, under the first country of that day's orders).
    AOV is not sliced: its parts (gross_sales, discounts, orders) are. Zero slices are left out. -#}
-- depends_on: {{ ref('int_ecommerce_refresh_windows') }}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

orders as (
    select * from {{ ref('orders') }}
),

order_lines as (
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

line_slices as (
    {%- for dimension in ['product', 'country', 'customer_type'] %}
    select
        workspace_id,
        date,
        currency,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        sum(gross_sales) as gross_sales,
        sum(discounts) as discounts,
        sum(refunds) as refunds,
        sum(units) as units
    from line_amounts
    group by workspace_id, date, currency, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

-- converted per slice and day, as ecommerce_daily_metrics converts per day
line_slices_converted as (
    select
        line_slices.workspace_id,
        line_slices.date,
        line_slices.dimension,
        line_slices.dimension_value,
        {%- for amount in ['gross_sales', 'discounts', 'refunds'] %}
        sum({{ fx_convert('line_slices.' ~ amount, 'line_slices.currency', 'workspaces.reporting_currency', 4) }}) as {{ amount }},
        {%- endfor %}
        sum(line_slices.units) as units
    from line_slices
    inner join workspaces
        on workspaces.workspace_id = line_slices.workspace_id
    {{ fx_rate_joins('line_slices.date', 'line_slices.currency', 'workspaces.reporting_currency') }}
    group by line_slices.workspace_id, line_slices.date, line_slices.dimension, line_slices.dimension_value
),

order_slices as (
    {%- for dimension in ['country', 'customer_type'] %}
    select
        workspace_id,
        order_date as date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        count(*) as orders
    from sold_orders
    group by workspace_id, order_date, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
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
),

customer_slices as (
    select
        workspace_id,
        date,
        'country' as dimension,
        country as dimension_value,
        sum(is_new) as new_customers,
        sum(is_returning) as returning_customers
    from person_days
    group by workspace_id, date, country
),

long_form as (
    {%- set measures = [
        ('line_slices_converted', 'gross_sales', 'gross_sales', none),
        ('line_slices_converted', 'discounts', 'discounts', none),
        ('line_slices_converted', 'refunds', 'refunds', none),
        ('line_slices_converted', 'net_sales', 'gross_sales - discounts - refunds', none),
        ('line_slices_converted', 'units', 'units', none),
        ('order_slices', 'orders', 'orders', none),
        ('customer_slices', 'new_customers', 'new_customers', none),
        ('customer_slices', 'returning_customers', 'returning_customers', none),
    ] %}
    {{ slices_long_form(measures) }}
),

final as (
    select * from long_form
    -- a null (a missing FX rate) stays, for the tests to catch
    where value is null or value <> 0
)

select * from final
where {{ has_fx_rates('workspace_id', 'ecommerce') }}  -- a missing FX rate leaves the workspace out: docs/metrics.md, Currency
