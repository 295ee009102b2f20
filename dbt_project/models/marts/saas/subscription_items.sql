{#- One row per current subscription item: price, quantity and its monthly amount before coupons
    (metered items: 0, they are billed on usage). The subscription's MRR applies coupons and status. -#}
with items as (
    select * from {{ ref('stg_stripe__subscription_items') }}
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
