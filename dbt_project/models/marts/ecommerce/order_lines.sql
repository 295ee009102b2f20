{#- One row per line of a non-test order, in shop currency.

    Incremental. Shopify rewrites an order's lines whenever the order changes (an edit, a
    cancellation, a refund weeks later) and dlt then reloads the order with all of its lines, under a
    new load id. So each run takes the orders loaded since this table's newest order load for the
    workspace, minus a lookback window, and replaces ALL lines of those orders (delete+insert on the
    order key): changed lines are updated and lines removed by an edit disappear.

    The lookback (var `ecommerce_lookback_hours`, default 72) covers loads that commit out of load-id
    order: a load id is stamped when a sync starts, so a long sync (a bulk export) or a run that read
    the orders table between dlt's table loads can leave rows with an id older than the watermark.
    Re-reading three days of loads is cheap and heals those. Changing a staging formula needs
    `dbt build --full-refresh -s order_lines`. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['workspace_id', 'order_id'],
        on_schema_change='fail'
    )
}}

with lines as (
    select * from {{ ref('stg_shopify__order_lines') }}
),

orders as (
    select * from {{ ref('stg_shopify__orders') }}
),

{% if is_incremental() %}
watermarks as (
    select
        workspace_id,
        max(order_load_epoch) - {{ var('ecommerce_lookback_hours', 72) }} * 3600 as reload_after
    from {{ this }}
    group by workspace_id
),
{% endif %}

changed_orders as (
    select orders.*
    from orders
    {% if is_incremental() %}
    left join watermarks
        on watermarks.workspace_id = orders.workspace_id
    -- a workspace not in the table yet is read in full
    where watermarks.reload_after is null
        or orders.load_epoch > watermarks.reload_after
    {% endif %}
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
