{#- One row per refund of a non-test order, dated by the refund's own day in the shop's timezone
    (docs/metrics.md: refunds count on the day they are created, whatever the order's date).

    Incremental (macros/incremental_changes.sql): a run rebuilds the refunds of the orders it
    changed (a refund reloads its order, and its order's person or cancellation may change). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_changed(changed_orders(), 'order_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
with refunds as (
    {{ rows_of_changed_orders(ref('stg_shopify__refunds')) }}
),

refund_lines as (
    select
        workspace_id,
        refund_id,
        cast(sum(quantity) as bigint) as refunded_units,
        cast(sum(subtotal) as decimal(38, 9)) as refunded_sales,
        cast(sum(total_tax) as decimal(38, 9)) as refunded_tax
    from {{ ref('stg_shopify__refund_lines') }} as refund_lines
    {%- if is_incremental() %}
    where exists (
        select 1 from refunds
        where refunds.workspace_id = refund_lines.workspace_id
            and refunds.refund_id = refund_lines.refund_id
    )
    {%- endif %}
    group by workspace_id, refund_id
),

orders as (
    select * from {{ ref('int_orders_identified') }}
),

workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

final as (
    select
        refunds.workspace_id,
        refunds.refund_id,
        refunds.order_id,
        orders.person_id,
        refunds.created_at,
        {{ local_date('refunds.created_at', 'workspaces.timezone') }} as refund_date,
        orders.order_date,
        orders.is_cancelled as is_order_cancelled,
        refunds.note,
        -- every amount of an order and its refunds is in the shop's currency
        orders.currency,
        cast(coalesce(refund_lines.refunded_units, 0) as bigint) as refunded_units,
        -- the amount net sales subtract: refunded lines after discounts, without tax or shipping
        cast(coalesce(refund_lines.refunded_sales, 0) as decimal(38, 9)) as refunded_sales,
        cast(coalesce(refund_lines.refunded_tax, 0) as decimal(38, 9)) as refunded_tax,
        refunds.total_refunded
    from refunds
    left join refund_lines
        on refund_lines.workspace_id = refunds.workspace_id
        and refund_lines.refund_id = refunds.refund_id
    left join orders
        on orders.workspace_id = refunds.workspace_id
        and orders.order_id = refunds.order_id
    left join workspaces
        on workspaces.workspace_id = refunds.workspace_id
)

select * from final
