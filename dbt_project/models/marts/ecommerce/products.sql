{#- One row per product, with its variants' price range and what it sold (orders that count as sold,
    before refunds), in shop currency. -#}
with products as (
    select * from {{ ref('stg_shopify__products') }}
),

variants as (
    select
        workspace_id,
        product_id,
        cast(count(*) as bigint) as variant_count,
        min(price) as min_price,
        max(price) as max_price
    from {{ ref('stg_shopify__product_variants') }}
    group by workspace_id, product_id
),

sold as (
    select
        workspace_id,
        product_id,
        cast(sum(quantity) as bigint) as units_sold,
        cast(sum(gross_sales) as decimal(38, 9)) as gross_sales,
        cast(sum(discounts) as decimal(38, 9)) as discounts
    from {{ ref('order_lines') }}
    where not is_cancelled
    group by workspace_id, product_id
),

final as (
    select
        products.workspace_id,
        products.product_id,
        products.product_title,
        products.handle,
        products.vendor,
        products.product_type,
        products.status,
        products.total_inventory,
        products.created_at,
        products.published_at,
        cast(coalesce(variants.variant_count, 0) as bigint) as variant_count,
        variants.min_price,
        variants.max_price,
        cast(coalesce(sold.units_sold, 0) as bigint) as units_sold,
        cast(coalesce(sold.gross_sales, 0) as decimal(38, 9)) as gross_sales,
        cast(coalesce(sold.discounts, 0) as decimal(38, 9)) as discounts
    from products
    left join variants
        on variants.workspace_id = products.workspace_id
        and variants.product_id = products.product_id
    left join sold
        on sold.workspace_id = products.workspace_id
        and sold.product_id = products.product_id
)

select * from final
