{#- One row per subscription, in its current state, with its MRR today (docs/metrics.md) and the
    days its MRR was first and last positive. -#}
with subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
),

subscription_days as (
    select * from {{ ref('int_subscription_mrr_daily') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

mrr_history as (
    select
        subscription_days.workspace_id,
        subscription_days.subscription_id,
        min(case when subscription_days.mrr > 0 then subscription_days.date_day end) as first_paying_date,
        max(case when subscription_days.mrr > 0 then subscription_days.date_day end) as last_paying_date,
        sum(case when subscription_days.date_day = workspaces.as_of_day then subscription_days.mrr_reporting else 0 end) as current_mrr,
        sum(case when subscription_days.date_day = workspaces.as_of_day then subscription_days.mrr else 0 end)
            as current_mrr_in_billing_currency
    from subscription_days
    inner join workspaces on workspaces.workspace_id = subscription_days.workspace_id
    group by subscription_days.workspace_id, subscription_days.subscription_id
),

final as (
    select
        subscriptions.workspace_id,
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.status,
        subscriptions.currency,
        subscriptions.created_at,
        subscriptions.started_at,
        subscriptions.trial_started_at,
        subscriptions.trial_ended_at,
        subscriptions.cancel_at_period_end,
        subscriptions.cancel_at,
        subscriptions.canceled_at,
        subscriptions.ended_at,
        subscriptions.cancellation_reason,
        mrr_history.first_paying_date,
        mrr_history.last_paying_date,
        cast(coalesce(mrr_history.current_mrr, 0) as decimal(38, 6)) as current_mrr,
        cast(coalesce(mrr_history.current_mrr_in_billing_currency, 0) as decimal(38, 6)) as current_mrr_in_billing_currency
    from subscriptions
    left join mrr_history
        on mrr_history.workspace_id = subscriptions.workspace_id
        and mrr_history.subscription_id = subscriptions.subscription_id
)

select * from final
