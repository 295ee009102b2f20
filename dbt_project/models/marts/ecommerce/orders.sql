{#- One row per non-test order (cancelled ones included, flagged), in shop currency, with its person,
    its day in the shop's timezone and its line totals.

    Incremental (macros/incremental_changes.sql): a run rebuilds the orders it changed and every
    order of the people it changed (which of them is the person's first, `new`, may move). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_changed(ecommerce_changed_order_set(), 'order_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
with orders as (
    select staged.* from {{ ref('stg_shopify__orders') }} as staged
    {%- if is_incremental() %}
    inner join {{ ecommerce_changed_order_set() }} as changed
        on changed.workspace_id = staged.workspace_id
        and changed.order_id = staged.order_id
    {%- endif %}
),

identified as (
    select * from {{ ref('int_orders_identified') }}
),

customers as (
    select * from {{ ref('int_customers_unified') }}
),

lines as (
    select
        workspace_id,
        order_id,
        cast(count(*) as bigint) as line_count,
        cast(sum(quantity) as bigint) as units,
        cast(sum(gross_sales) as decimal(38, 9)) as gross_sales,
        cast(sum(discounts) as decimal(38, 9)) as discounts
    from {{ ref('order_lines') }} as order_lines
    {%- if is_incremental() %}
    where exists (
        select 1 from orders
        where orders.workspace_id = order_lines.workspace_id
            and orders.order_id = order_lines.order_id
    )
    {%- endif %}
    group by workspace_id, order_id
),

final as (
    select
        orders.workspace_id,
        orders.order_id,
        orders.order_name,
        identified.person_id,
        orders.customer_id,
        identified.email,
        orders.created_at,
        identified.order_date,
        orders.updated_at,
        orders.cancelled_at,
        orders.cancel_reason,
        orders.is_cancelled,
        -- new: the person's first order that counts as sold; cancelled orders are neither
        case
            when orders.is_cancelled then null
            when customers.first_order_at = orders.created_at then 'new'
            else 'returning'
        end as customer_type,
        orders.financial_status,
        orders.fulfillment_status,
        orders.source_name,
        orders.shipping_country_code,
        orders.currency,
        cast(coalesce(lines.line_count, 0) as bigint) as line_count,
        cast(coalesce(lines.units, 0) as bigint) as units,
        cast(coalesce(lines.gross_sales, 0) as decimal(38, 9)) as gross_sales,
        cast(coalesce(lines.discounts, 0) as decimal(38, 9)) as discounts,
        cast(coalesce(lines.gross_sales, 0) - coalesce(lines.discounts, 0) as decimal(38, 9)) as discounted_sales,
        orders.total_shipping,
        orders.total_tax,
        orders.total_price,
        orders.total_refunded,
        orders.current_total_price
    from orders
    inner join identified
        on identified.workspace_id = orders.workspace_id
        and identified.order_id = orders.order_id
    left join customers
        on customers.workspace_id = identified.workspace_id
        and customers.person_id = identified.person_id
    left join lines
        on lines.workspace_id = orders.workspace_id
        and lines.order_id = orders.order_id
)

select * from final
