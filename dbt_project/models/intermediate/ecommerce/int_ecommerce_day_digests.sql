{#- A fingerprint per workspace and local day of every input row the ecommerce daily tables read
    for that day (macro row_digest): orders and their lines on the order's day (with the person's
    first order day, which makes them new or returning), refunds and their lines on the refund's
    day (with the refunded order's country and customer type, which slice them); the workspace's
    timezone and reporting currency on 1900-01-01 (a change rebuilds it in full); the exchange
    rates on their first day, under the workspace '*'. int_ecommerce_refresh_windows compares it
    with the digests the daily tables were built from (macros/incremental_days.sql). -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

orders as (
    select * from {{ ref('orders') }}
),

customers as (
    select * from {{ ref('customers') }}
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

input_rows as (
    select orders.workspace_id, orders.order_date as date_day,
        {{ row_digest(['orders.order_id', 'orders.person_id', 'orders.is_cancelled', 'orders.customer_type',
                       'orders.currency', 'orders.gross_sales', 'orders.discounts', 'orders.units',
                       'orders.shipping_country_code', 'customers.first_order_date']) }} as row_hash
    from orders
    left join customers
        on customers.workspace_id = orders.workspace_id
        and customers.person_id = orders.person_id

    union all

    select orders.workspace_id, orders.order_date as date_day,
        {{ row_digest(['order_lines.order_line_id', 'order_lines.product_title', 'order_lines.quantity',
                       'order_lines.gross_sales', 'order_lines.discounts', 'order_lines.currency']) }} as row_hash
    from order_lines
    inner join orders
        on orders.workspace_id = order_lines.workspace_id
        and orders.order_id = order_lines.order_id

    union all

    select refunds.workspace_id, refunds.refund_date as date_day,
        {{ row_digest(['refunds.refund_id', 'refunds.order_id', 'refunds.currency', 'refunds.refunded_sales',
                       'orders.shipping_country_code', 'orders.customer_type']) }} as row_hash
    from refunds
    left join orders
        on orders.workspace_id = refunds.workspace_id
        and orders.order_id = refunds.order_id

    union all

    select refunds.workspace_id, refunds.refund_date as date_day,
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

{{ day_digests('workspaces', 'input_rows') }}
