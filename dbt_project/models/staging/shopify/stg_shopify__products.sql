with source as (
    select * from {{ conformed_source('shopify', 'products') }}
),

renamed as (
    select
        workspace_id,
        id as product_id,
        title as product_title,
        handle,
        vendor,
        product_type,
        lower(status) as status,
        cast(total_inventory as bigint) as total_inventory,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at,
        cast(published_at as timestamp with time zone) as published_at
    from source
)

select * from renamed
