{#- One row per line of a non-test order, in shop currency.

    Incremental (macros/incremental_changes.sql). Shopify rewrites an order's lines whenever the
    order changes (an edit, a cancellation, a refund weeks later) and dlt then reloads the order with
    all of its lines. So each run deletes ALL lines of the orders int_ecommerce_changes lists and
    inserts their lines as loaded: changed lines are updated and lines removed by an edit disappear.
    Changing a staging formula needs `dbt build --full-refresh -s order_lines`. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{{ delete_changed(changed_orders(), 'order_id') }}"
    )
}}
-- depends_on: {{ ref('int_ecommerce_changes') }}
with lines as (
    select * from {{ ref('stg_shopify__order_lines') }}
),

changed_orders as (
    {{ rows_of_changed_orders(ref('stg_shopify__orders')) }}
),

final as (
    select
        lines.workspace_id,
        lines.order_line_id,
        lines.order_id,
        lines.product_id,
        lines.variant_id,
        lines.sku,
        lines.product_title,
        lines.variant_title,
        lines.vendor,
        changed_orders.created_at as order_created_at,
        changed_orders.is_cancelled,
        lines.currency,
        lines.quantity,
        lines.unit_price,
        lines.gross_sales,
        lines.discounts,
        lines.gross_sales - lines.discounts as discounted_sales,
        changed_orders.load_epoch as order_load_epoch
    from lines
    inner join changed_orders
        on changed_orders.workspace_id = lines.workspace_id
        and changed_orders.order_id = lines.order_id
)

select * from final
