{#- Every customer the API returned or an event named, plus the customers that subscriptions or
    invoices still reference but Stripe's listing no longer returns: Stripe lists no deleted
    customer, so one deleted before the first sync (or while the event cursor had expired) exists
    only through those references. They are kept as deleted (or, when the connector's contract set
    the customer aside, as not deleted), so marts.saas_customers has a row for every customer a
    subscription or invoice points at. -#}
with source as (
    select * from {{ conformed_source('stripe', 'customers') }}
),

subscriptions as (
    select * from {{ conformed_source('stripe', 'subscriptions') }}
),

invoices as (
    select * from {{ conformed_source('stripe', 'invoices') }}
),

quarantined as (
    -- set aside by the connector's contract (pipelines/ingest/quarantine.py): not listed, yet not deleted
    select distinct workspace_id, object_id as customer_id
    from {{ conformed_source('stripe', 'quarantine_customers') }}
    where resolved_at is null
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
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
),

referenced as (
    select workspace_id, customer as customer_id, cast(null as {{ dbt.type_string() }}) as email,
           cast(null as {{ dbt.type_string() }}) as customer_name, upper(currency) as currency, created
    from subscriptions
    where customer is not null
    union all
    select workspace_id, customer as customer_id, customer_email as email, customer_name,
           upper(currency) as currency, created
    from invoices
    where customer is not null
),

-- the references to customers the listing lacks, before ranking: a customer's references are all
-- kept or all dropped (the condition reads its key alone), so each one's newest is the same, and
-- the sort is over the few unlisted customers' references, not over every invoice
unlisted_references as (
    select referenced.*
    from referenced
    where not exists (
        select 1 from renamed
        where renamed.workspace_id = referenced.workspace_id
            and renamed.customer_id = referenced.customer_id
    )
),

newest_reference as (
    select
        unlisted_references.*,
        row_number() over (
            partition by workspace_id, customer_id
            order by case when email is null then 1 else 0 end, created desc
        ) as newest
    from unlisted_references
),

unlisted as (
    select
        newest_reference.workspace_id,
        newest_reference.customer_id,
        newest_reference.email,
        newest_reference.customer_name,
        newest_reference.currency,
        false as is_delinquent,
        {{ epoch_to_timestamp('null') }} as created_at,
        quarantined.customer_id is null as is_deleted,
        {{ epoch_to_timestamp('null') }} as deleted_at,
        -- known only from references: an incremental run takes it from the referencing rows' loads
        cast(null as double precision) as load_epoch
    from newest_reference
    left join quarantined
        on quarantined.workspace_id = newest_reference.workspace_id
        and quarantined.customer_id = newest_reference.customer_id
    where newest_reference.newest = 1
),

final as (
    select * from renamed
    union all
    select * from unlisted
)

select * from final
