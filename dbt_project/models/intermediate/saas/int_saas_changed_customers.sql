{#- The customers an incremental run recomputes (macros/incremental_changes.sql): their change
    points (int_customer_mrr_changes), their row of saas_customers and their movements. One row per
    workspace and customer
    - of a subscription int_saas_changed_subscriptions lists: its customer in the change points
      before this run and now, and the one the subscription names (its count of subscriptions);
    - with a customer row, an invoice or a quarantine record in a pending Stripe load (a customer
      Stripe no longer lists is known from its invoices, or kept as not deleted while set aside).
    Built after the subscriptions' change points, whose new customers it reads. -#}
with changed_subscriptions as (
    select * from {{ ref('int_saas_changed_subscriptions') }}
),

customers as (
    select workspace_id, customer_id
    from changed_subscriptions
    where customer_id is not null
    union all
    select subscription_changes.workspace_id, subscription_changes.customer_id
    from {{ ref('int_subscription_mrr_changes') }} as subscription_changes
    inner join changed_subscriptions
        on changed_subscriptions.workspace_id = subscription_changes.workspace_id
        and changed_subscriptions.subscription_id = subscription_changes.subscription_id
    union all
    select subscriptions.workspace_id, subscriptions.customer_id
    from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    inner join changed_subscriptions
        on changed_subscriptions.workspace_id = subscriptions.workspace_id
        and changed_subscriptions.subscription_id = subscriptions.subscription_id
    union all
    select workspace_id, customer_id
    from {{ ref('stg_stripe__customers') }} as listed
    where {{ in_pending_loads('stripe', 'listed.load_epoch') }}
    union all
    select workspace_id, customer_id
    from {{ ref('stg_stripe__invoices') }} as invoices
    where {{ in_pending_loads('stripe', 'invoices.load_epoch') }}
    union all
    select workspace_id, object_id as customer_id
    from {{ conformed_source('stripe', 'quarantine_customers') }}
    where {{ in_pending_loads('stripe', 'cast(quarantine_customers._dlt_load_id as double precision)') }}
),

final as (
    select distinct workspace_id, customer_id
    from customers
    where customer_id is not null
)

select * from final
