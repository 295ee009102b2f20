with source as (
    select * from {{ conformed_source('stripe', 'prices') }}
),

renamed as (
    select
        workspace_id,
        id as price_id,
        product as product_id,
        nickname as price_nickname,
        upper(currency) as currency,
        type as price_type,
        cast({{ minor_to_major('unit_amount', 'currency') }} as decimal(38, 6)) as unit_amount,
        recurring__interval as recurring_interval,
        recurring__interval_count as recurring_interval_count,
        recurring__usage_type as usage_type,
        coalesce(active, false) as is_active,
        {{ epoch_to_timestamp('created') }} as created_at,
        -- a deleted price stays: old invoice lines and subscription versions still refer to it
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
