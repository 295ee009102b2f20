{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('subscription_items') }}"
) }}
{#- One row per current subscription item: price, quantity and its monthly amount before coupons
    (metered items: 0, they are billed on usage). The subscription's MRR applies coupons and status.
    Incremental (macros/incremental_changes.sql): a run recomputes the items of the subscriptions
    int_saas_changed_subscriptions lists (the connector replaces a subscription's whole item set). -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with items as (
    select * from {{ ref('stg_stripe__subscription_items') }} as items
    where {{ saas_rebuilt_rows('subscription_items', 'items') }}
),

products as (
    select * from {{ ref('stg_stripe__products') }}
),

final as (
    select
        items.workspace_id,
        items.subscription_item_id,
        items.subscription_id,
        items.price_id,
        items.product_id,
        products.product_name,
        items.currency,
        items.quantity,
        items.unit_amount,
        items.recurring_interval,
        items.recurring_interval_count,
        items.usage_type,
        case when items.usage_type = 'metered' then cast(0 as decimal(38, 9))
            else {{ saas_monthly_amount('items.unit_amount * items.quantity', 'items.recurring_interval', 'items.recurring_interval_count') }}
        end as monthly_amount,
        items.created_at,
        items.current_period_start_at,
        items.current_period_end_at
    from items
    left join products
        on products.workspace_id = items.workspace_id
        and products.product_id = items.product_id
)

select * from final
