with source as (
    -- refund lines of test orders are dropped, like the orders themselves
    select refund_lines.*
    from {{ conformed_source('shopify', 'order_refund_line_items', 'refund_lines') }}
    where exists (
        select 1
        from {{ conformed_source('shopify', 'order_refunds', 'refunds') }}
        inner join {{ conformed_source('shopify', 'orders') }}
            on orders.workspace_id = refunds.workspace_id
            and orders.id = refunds.order_id
        where refunds.workspace_id = refund_lines.workspace_id
            and refunds.id = refund_lines.refund_id
            and orders.test is not true
    )
),

renamed as (
    select
        workspace_id,
        id as refund_line_id,
        refund_id,
        line_item_id as order_line_id,
        cast(quantity as bigint) as quantity,
        restock_type,
        upper(subtotal_currency) as currency,
        -- the refunded sales amount (after the line's discounts, before tax)
        cast(subtotal_amount as decimal(38, 9)) as subtotal,
        cast(total_tax_amount as decimal(38, 9)) as total_tax,
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
