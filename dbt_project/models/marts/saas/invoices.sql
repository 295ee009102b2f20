{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['workspace_id', 'invoice_id']
) }}
{#- One row per invoice (deleted drafts flagged with is_deleted), amounts in major units of the
    invoice's currency.

    Incremental on the load, not on the invoice's date: the connector rewrites an invoice's row
    whenever Stripe changes it (paid, voided, marked uncollectible, deleted), and a rewritten row
    gets the new load's id. So each run takes the rows of the loads not processed yet
    (int_loads_pending, macros/incremental_changes.sql). An invoice changed months after it was
    issued is picked up like any other. -#}
-- depends_on: {{ ref('int_loads_pending') }}
with invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
    {% if is_incremental() %}
    where {{ in_pending_loads('stripe', 'load_epoch') }}
    {% endif %}
),

final as (
    select
        workspace_id,
        invoice_id,
        customer_id,
        subscription_id,
        invoice_number,
        status,
        billing_reason,
        currency,
        subtotal,
        total_excluding_tax,
        tax,
        total,
        amount_due,
        amount_paid,
        amount_remaining,
        created_at,
        period_start_at,
        period_end_at,
        finalized_at,
        paid_at,
        voided_at,
        marked_uncollectible_at,
        is_deleted,
        deleted_at,
        load_epoch
    from invoices
)

select * from final
