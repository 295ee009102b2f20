{#- Every subscription's MRR over time, from both sources, in the subscription's currency.
    Precedence: recorded history (subscription versions, dated by Stripe's events) wins from the
    workspace's first sync on; before it, the invoice rebuild is the only source, and the rebuild is
    cut at the first sync, so the two never overlap. -#}
with rebuilt as (
    select * from {{ ref('int_subscription_mrr_rebuilt') }}
),

recorded as (
    select * from {{ ref('int_subscription_mrr_recorded') }}
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
