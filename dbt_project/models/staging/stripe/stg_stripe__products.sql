with source as (
    select * from {{ conformed_source('stripe', 'products') }}
),

renamed as (
    select
        workspace_id,
        id as product_id,
        name as product_name,
        coalesce(active, false) as is_active,
        {{ epoch_to_timestamp('created') }} as created_at,
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
