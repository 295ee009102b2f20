{#- The current items of each subscription (the connector replaces a subscription's whole item set). -#}
with source as (
    select * from {{ conformed_source('stripe', 'subscription_items') }}
),

renamed as (
    select
        workspace_id,
        id as subscription_item_id,
        subscription as subscription_id,
        price__id as price_id,
        price__product as product_id,
        upper(price__currency) as currency,
        quantity,
        cast({{ minor_to_major('price__unit_amount', 'price__currency') }} as decimal(38, 6)) as unit_amount,
        price__recurring__interval as recurring_interval,
        price__recurring__interval_count as recurring_interval_count,
        price__recurring__usage_type as usage_type,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('current_period_start') }} as current_period_start_at,
        {{ epoch_to_timestamp('current_period_end') }} as current_period_end_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
