with source as (
    -- refunds of test orders are dropped, like the orders themselves
    select refunds.*
    from {{ conformed_source('shopify', 'order_refunds', 'refunds') }}
    where exists (
        select 1
        from {{ conformed_source('shopify', 'orders') }}
        where orders.workspace_id = refunds.workspace_id
            and orders.id = refunds.order_id
            and orders.test is not true
    )
),

renamed as (
    select
        workspace_id,
        id as refund_id,
        order_id,
        -- a refund counts on its own day, not its order's
        cast(created_at as timestamp with time zone) as created_at,
        cast(processed_at as timestamp with time zone) as processed_at,
        note,
        upper(total_refunded_currency) as currency,
        -- everything paid back: lines, tax and shipping
        cast(total_refunded_amount as decimal(38, 9)) as total_refunded,
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
