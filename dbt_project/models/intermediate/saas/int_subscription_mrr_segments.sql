{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('int_subscription_mrr_segments') }}"
) }}
{#- Every subscription's MRR over time, from both sources, in the subscription's currency.
    Precedence: recorded history (subscription versions, dated by Stripe's events) wins from the
    workspace's first sync on; before it, the invoice rebuild is the only source, and the rebuild is
    cut at the first sync, so the two never overlap.

    Incremental (macros/incremental_changes.sql): a run recomputes the subscriptions
    int_saas_changed_subscriptions lists. -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with rebuilt as (
    select * from {{ ref('int_subscription_mrr_rebuilt') }} as rebuilt
    where {{ saas_rebuilt_rows('int_subscription_mrr_segments', 'rebuilt') }}
),

recorded as (
    select * from {{ ref('int_subscription_mrr_recorded') }} as recorded
    where {{ saas_rebuilt_rows('int_subscription_mrr_segments', 'recorded') }}
),

unioned as (
    select workspace_id, customer_id, subscription_id, currency, valid_from_at, valid_to_at, mrr,
        'invoices' as mrr_source
    from rebuilt
    where valid_to_at > valid_from_at
    union all
    select workspace_id, customer_id, subscription_id, currency, valid_from_at, valid_to_at, mrr,
        'history' as mrr_source
    from recorded
)

select * from unioned
