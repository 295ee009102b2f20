{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['workspace_id', 'invoice_id']
) }}
{#- One row per invoice line, amounts in major units. Incremental like `invoices` (the rows of the
    loads not processed yet), and keyed by invoice for the delete: when Stripe changes an invoice the
    connector replaces its whole line set, so every line of a reloaded invoice is replaced here too
    and a line that disappeared does not linger. -#}
-- depends_on: {{ ref('int_loads_pending') }}
with lines as (
    select * from {{ ref('stg_stripe__invoice_lines') }}
    {% if is_incremental() %}
    where {{ in_pending_loads('stripe', 'load_epoch') }}
    {% endif %}
),

final as (
    select
        workspace_id,
        invoice_line_id,
        invoice_id,
        subscription_id,
        subscription_item_id,
        price_id,
        product_id,
        line_type,
        is_proration,
        description,
        currency,
        amount,
        quantity,
        period_start_at,
        period_end_at,
        load_epoch
    from lines
)

select * from final
