{#- Each subscription's plan, the dimension saas_daily_slices splits by: the product of its largest
    current item (by monthly amount). -#}
with items as (
    select * from {{ ref('subscription_items') }}
),

ranked_items as (
    select
        workspace_id,
        subscription_id,
        product_name,
        row_number() over (
            partition by workspace_id, subscription_id
            order by monthly_amount desc, product_name
        ) as item_rank
    from items
),

final as (
    select workspace_id, subscription_id, coalesce(product_name, '(none)') as plan
    from ranked_items
    where item_rank = 1
)

select * from final
