{#- Every line of each invoice. Subscription lines carry the item, the price, the quantity and the
    service period; proration lines are flagged. -#}
with source as (
    select * from {{ conformed_source('stripe', 'invoice_lines') }}
),

renamed as (
    select
        workspace_id,
        id as invoice_line_id,
        invoice as invoice_id,
        description,
        upper(currency) as currency,
        cast({{ minor_to_major('amount', 'currency') }} as decimal(38, 6)) as amount,
        quantity,
        pricing__price_details__price as price_id,
        pricing__price_details__product as product_id,
        parent__type as line_type,
        coalesce(parent__subscription_item_details__proration, false) as is_proration,
        parent__subscription_item_details__subscription as subscription_id,
        parent__subscription_item_details__subscription_item as subscription_item_id,
        {{ epoch_to_timestamp('period__start') }} as period_start_at,
        {{ epoch_to_timestamp('period__end') }} as period_end_at,
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
