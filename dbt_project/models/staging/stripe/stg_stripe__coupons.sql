with source as (
    select * from {{ conformed_source('stripe', 'coupons') }}
),

renamed as (
    select
        workspace_id,
        id as coupon_id,
        name as coupon_name,
        duration,
        duration_in_months,
        cast(percent_off as decimal(9, 4)) as percent_off,
        cast({{ minor_to_major('amount_off', 'currency') }} as decimal(38, 6)) as amount_off,
        upper(currency) as currency,
        {{ epoch_to_timestamp('created') }} as created_at,
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
