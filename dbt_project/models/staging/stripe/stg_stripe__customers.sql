with source as (
    select * from {{ conformed_source('stripe', 'customers') }}
),

renamed as (
    select
        workspace_id,
        id as customer_id,
        email,
        name as customer_name,
        upper(currency) as currency,
        coalesce(delinquent, false) as is_delinquent,
        {{ epoch_to_timestamp('created') }} as created_at,
        -- deleted customers keep their row (their subscriptions and invoices still point at them)
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at
    from source
)

select * from renamed
