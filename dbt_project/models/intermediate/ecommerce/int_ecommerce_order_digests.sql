{#- The part of each day's fingerprint (int_ecommerce_day_digests) that comes from one order: per
    workspace, order and local day, the sum of the row hashes (macro row_digest) of the order and
    its lines on the order's day (with the person's first order day, which makes them new or
    returning), and of its refunds and their lines on each refund's day (with the refunded order's
    country and customer type, which slice them). A day's digest is the sum over its orders.

    Incremental (macros/incremental_changes.sql): a run rehashes the orders whose mart rows it
    rebuilt (the changed orders and every order of a changed person: a person's first order day is
    hashed with each of their orders), so the day digests no longer re-read and rehash every order,
    line and refund after a small change; the digests stay the same sums. An order deleted in the
    shop is a changed order with no rows left: its parts are deleted. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_changed(ecommerce_changed_order_set(), 'order_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
-- depends_on: {{ ref('int_orders_identified') }}
with
{%- if is_incremental() %}
changed as (
    select * from {{ ecommerce_changed_order_set() }} as changed_orders
),
{%- endif %}

orders as (
    select orders.* from {{ ref('orders') }} as orders
    {%- if is_incremental() %}
    inner join changed
        on changed.workspace_id = orders.workspace_id
        and changed.order_id = orders.order_id
    {%- endif %}
),

customers as (
    select * from {{ ref('customers') }}
),

-- not materialized: read through by the filters and joins below (DuckDB would copy the whole table first)
order_lines as not materialized (
    select * from {{ ref('order_lines') }}
),

refunds as (
    select refunds.* from {{ ref('refunds') }} as refunds
    {%- if is_incremental() %}
    inner join changed
        on changed.workspace_id = refunds.workspace_id
        and changed.order_id = refunds.order_id
    {%- endif %}
),

refund_lines as (
    select * from {{ ref('stg_shopify__refund_lines') }}
),

input_rows as (
    select orders.workspace_id, orders.order_id, orders.order_date as date_day,
        {{ row_digest(['orders.order_id', 'orders.person_id', 'orders.is_cancelled', 'orders.customer_type',
                       'orders.currency', 'orders.gross_sales', 'orders.discounts', 'orders.units',
                       'orders.shipping_country_code', 'customers.first_order_date']) }} as row_hash
    from orders
    left join customers
        on customers.workspace_id = orders.workspace_id
        and customers.person_id = orders.person_id

    union all

    select orders.workspace_id, orders.order_id, orders.order_date as date_day,
        {{ row_digest(['order_lines.order_line_id', 'order_lines.product_title', 'order_lines.quantity',
                       'order_lines.gross_sales', 'order_lines.discounts', 'order_lines.currency']) }} as row_hash
    from order_lines
    inner join orders
        on orders.workspace_id = order_lines.workspace_id
        and orders.order_id = order_lines.order_id

    union all

    select refunds.workspace_id, refunds.order_id, refunds.refund_date as date_day,
        {{ row_digest(['refunds.refund_id', 'refunds.order_id', 'refunds.currency', 'refunds.refunded_sales',
                       'orders.shipping_country_code', 'orders.customer_type']) }} as row_hash
    from refunds
    left join {{ ref('orders') }} as orders
        on orders.workspace_id = refunds.workspace_id
        and orders.order_id = refunds.order_id

    union all

    select refunds.workspace_id, refunds.order_id, refunds.refund_date as date_day,
        {{ row_digest(['refund_lines.refund_line_id', 'refund_lines.order_line_id', 'refund_lines.subtotal',
                       'refund_lines.currency', 'order_lines.product_title']) }} as row_hash
    from refund_lines
    inner join refunds
        on refunds.workspace_id = refund_lines.workspace_id
        and refunds.refund_id = refund_lines.refund_id
    left join order_lines
        on order_lines.workspace_id = refund_lines.workspace_id
        and order_lines.order_line_id = refund_lines.order_line_id
),

final as (
    select workspace_id, order_id, date_day, cast(sum(row_hash) as decimal(38, 0)) as digest
    from input_rows
    group by workspace_id, order_id, date_day
)

select * from final
