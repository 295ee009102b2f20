with source as (
    -- lines of test orders are dropped, like the orders themselves
    select lines.*
    from {{ conformed_source('shopify', 'order_line_items', 'lines') }}
    where exists (
        select 1
        from {{ conformed_source('shopify', 'orders') }}
        where orders.workspace_id = lines.workspace_id
            and orders.id = lines.order_id
            and orders.test is not true
    )
),

renamed as (
    select
        workspace_id,
        id as order_line_id,
        order_id,
        product_id,
        variant_id,
        name as line_name,
        title as product_title,
        variant_title,
        sku,
        vendor,
        cast(quantity as bigint) as quantity,
        cast(current_quantity as bigint) as current_quantity,
        upper(original_unit_price_currency) as currency,
        cast(original_unit_price_amount as decimal(38, 9)) as unit_price,
        cast(original_unit_price_amount * quantity as decimal(38, 9)) as gross_sales,
        -- line and order-level discounts, as Shopify allocated them to this line
        cast({{ ecommerce_allocated_discount('discount_allocations') }} as decimal(38, 9)) as discounts,
        cast(discounted_total_amount as decimal(38, 9)) as discounted_total,
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
