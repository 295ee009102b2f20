with source as (
    select * from {{ conformed_source('shopify', 'product_variants') }}
),

renamed as (
    select
        workspace_id,
        id as variant_id,
        product_id,
        title as variant_title,
        display_name,
        sku,
        cast(position as bigint) as position,
        -- prices are in shop currency (Shopify sends plain decimals for variants)
        cast(price as decimal(38, 9)) as price,
        cast(compare_at_price as decimal(38, 9)) as compare_at_price,
        cast(inventory_item_unit_cost_amount as decimal(38, 9)) as unit_cost,
        cast(inventory_quantity as bigint) as inventory_quantity,
        available_for_sale,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at
    from source
)

select * from renamed
