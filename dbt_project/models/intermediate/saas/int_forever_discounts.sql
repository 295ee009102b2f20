{#- Discounts whose coupon lasts forever: the only ones that reduce MRR (docs/metrics.md).
    `once` and `repeating` coupons change invoices, not MRR. -#}
with discounts as (
    select * from {{ ref('stg_stripe__discounts') }}
),

coupons as (
    select * from {{ ref('stg_stripe__coupons') }}
),

final as (
    select
        discounts.workspace_id,
        discounts.discount_id,
        discounts.subscription_id,
        discounts.customer_id,
        discounts.started_at,
        -- a removed discount stops applying when it was removed
        case when discounts.is_deleted then discounts.deleted_at end as ended_at,
        coupons.coupon_id,
        coupons.percent_off,
        coupons.amount_off
    from discounts
    inner join coupons
        on coupons.workspace_id = discounts.workspace_id
        and coupons.coupon_id = discounts.coupon_id
    where coupons.duration = 'forever'
)

select * from final
