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

changed_lines as (
    select
        lines.*,
        changed_orders.created_at as order_created_at,
        changed_orders.is_cancelled,
        changed_orders.load_epoch as order_load_epoch
    from lines
    inner join changed_orders
        on changed_orders.workspace_id = lines.workspace_id
        and changed_orders.order_id = lines.order_id
),

-- each line's discount allocations summed after the join, for the lines this run builds only
discounted as (
    select
        changed_lines.*,
        cast({{ ecommerce_allocated_discount('changed_lines.discount_allocations') }} as decimal(38, 9)) as discounts
    from changed_lines
),

final as (
    select
        workspace_id,
        order_line_id,
        order_id,
        product_id,
        variant_id,
        sku,
        product_title,
        variant_title,
        vendor,
        order_created_at,
        is_cancelled,
        currency,
        quantity,
        unit_price,
        gross_sales,
        discounts,
        gross_sales - discounts as discounted_sales,
        order_load_epoch
    from discounted
)

select * from final
