with source as (
    select * from {{ conformed_source('stripe', 'invoices') }}
),

renamed as (
    select
        workspace_id,
        id as invoice_id,
        customer as customer_id,
        parent__subscription_details__subscription as subscription_id,
        number as invoice_number,
        status,
        billing_reason,
        upper(currency) as currency,
        cast({{ minor_to_major('subtotal', 'currency') }} as decimal(38, 6)) as subtotal,
        cast({{ minor_to_major('total_excluding_tax', 'currency') }} as decimal(38, 6)) as total_excluding_tax,
        cast({{ minor_to_major('total', 'currency') }} as decimal(38, 6)) as total,
        cast({{ minor_to_major('total - coalesce(total_excluding_tax, total)', 'currency') }} as decimal(38, 6)) as tax,
        cast({{ minor_to_major('amount_due', 'currency') }} as decimal(38, 6)) as amount_due,
        cast({{ minor_to_major('amount_paid', 'currency') }} as decimal(38, 6)) as amount_paid,
        cast({{ minor_to_major('amount_remaining', 'currency') }} as decimal(38, 6)) as amount_remaining,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('period_start') }} as period_start_at,
        {{ epoch_to_timestamp('period_end') }} as period_end_at,
        {{ epoch_to_timestamp('status_transitions__finalized_at') }} as finalized_at,
        {{ epoch_to_timestamp('status_transitions__paid_at') }} as paid_at,
        {{ epoch_to_timestamp('status_transitions__voided_at') }} as voided_at,
        {{ epoch_to_timestamp('status_transitions__marked_uncollectible_at') }} as marked_uncollectible_at,
        -- deleted drafts keep their row, flagged
        coalesce(deleted, false) as is_deleted,
        {{ epoch_to_timestamp('deleted_at') }} as deleted_at,
        -- dlt's load id (Unix seconds of the load): rows rewritten by a later sync get a later one
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
