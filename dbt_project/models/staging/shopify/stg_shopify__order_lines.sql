with source as (
    -- lines of test orders are dropped, like the orders themselves. Only the test orders are read:
    -- a line whose order is not loaded (a load stopped between the two tables, until the order's next
    -- load replaces its lines) stays here, and order_lines, which takes each line's day from its
    -- order, leaves it out. A semi-join to every non-test order cost every build after a change a join
    -- of every raw line to every raw order (docs/performance.md, "dbt after a small change: the order
    -- lines without every order").
    select lines.*
    from {{ conformed_source('shopify', 'order_line_items', 'lines') }}
    where not exists (
        select 1
        from {{ conformed_source('shopify', 'orders') }}
        where orders.workspace_id = lines.workspace_id
            and orders.id = lines.order_id
            and orders.test
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
        -- line and order-level discounts, as Shopify allocated them to this line (a JSON list): the
        -- order_lines mart sums them for the lines it builds, after its join to the changed orders (a
        -- sum here was computed for every raw line before any reader's join, on both warehouses)
        discount_allocations,
        cast(discounted_total_amount as decimal(38, 9)) as discounted_total,
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
