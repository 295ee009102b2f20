with source as (
    -- test orders are dropped here, so no downstream model can count them by accident
    select * from {{ conformed_source('shopify', 'orders') }}
    where test is not true
),

renamed as (
    select
        workspace_id,
        id as order_id,
        name as order_name,
        nullif(trim(email), '') as email,
        customer_id,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at,
        cast(processed_at as timestamp with time zone) as processed_at,
        cast(cancelled_at as timestamp with time zone) as cancelled_at,
        cancel_reason,
        cast(closed_at as timestamp with time zone) as closed_at,
        cancelled_at is not null as is_cancelled,
        upper(currency_code) as currency,
        upper(presentment_currency_code) as presentment_currency,
        display_financial_status as financial_status,
        display_fulfillment_status as fulfillment_status,
        source_name,
        coalesce(taxes_included, false) as taxes_included,
        -- Shopify's own order totals, in shop currency; "current" ones change after edits and refunds
        cast(subtotal_price_amount as decimal(38, 9)) as subtotal_price,
        cast(total_discounts_amount as decimal(38, 9)) as total_discounts,
        cast(total_shipping_price_amount as decimal(38, 9)) as total_shipping,
        cast(total_tax_amount as decimal(38, 9)) as total_tax,
        cast(total_price_amount as decimal(38, 9)) as total_price,
        cast(total_refunded_amount as decimal(38, 9)) as total_refunded,
        cast(current_total_price_amount as decimal(38, 9)) as current_total_price,
        shipping_address_country_code_v2 as shipping_country_code,
        -- dlt's load id is the load's start in unix seconds: the watermark of incremental models
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
