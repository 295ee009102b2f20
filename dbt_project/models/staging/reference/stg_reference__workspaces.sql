with source as (
    select * from {{ conformed_source('reference', 'workspaces') }}
),

renamed as (
    select
        workspace_id,
        name as workspace_name,
        vertical,
        timezone,
        upper(currency) as reporting_currency
    from source
)

select * from renamed
