{#- The items of each recorded subscription version; (workspace_id, subscription_id, valid_from)
    joins stg_stripe__subscription_versions. -#}
with source as (
    select * from {{ conformed_source('stripe', 'subscription_item_history') }}
),

renamed as (
    select
        workspace_id,
        subscription as subscription_id,
        valid_from,
        id as subscription_item_id,
        price__id as price_id,
        price__product as product_id,
        upper(price__currency) as currency,
        quantity,
        cast({{ minor_to_major('price__unit_amount', 'price__currency') }} as decimal(38, 6)) as unit_amount,
        price__recurring__interval as recurring_interval,
        price__recurring__interval_count as recurring_interval_count,
        price__recurring__usage_type as usage_type,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
