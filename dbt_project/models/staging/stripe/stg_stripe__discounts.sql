with source as (
    select * from {{ conformed_source('stripe', 'discounts') }}
),

renamed as (
    select
        workspace_id,
        id as discount_id,
        source__coupon as coupon_id,
        customer as customer_id,
        subscription as subscription_id,
        {{ epoch_to_timestamp('start') }} as started_at,
        -- a removed discount (customer.discount.deleted) stops applying when it was removed
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
