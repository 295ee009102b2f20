with source as (
    select * from {{ conformed_source('shopify', 'customers') }}
),

renamed as (
    select
        workspace_id,
        id as customer_id,
        first_name,
        last_name,
        display_name,
        nullif(trim(default_email_address_email_address), '') as email,
        lower(default_email_address_marketing_state) as email_marketing_state,
        verified_email as has_verified_email,
        lower(state) as account_state,
        default_address_country_code_v2 as country_code,
        cast(created_at as timestamp with time zone) as created_at,
        cast(updated_at as timestamp with time zone) as updated_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the account
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
