{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('subscriptions') }}"
) }}
{#- One row per subscription, in its current state, with its MRR today (docs/metrics.md) and the
    days its MRR was first and last positive, from its change points.

    Incremental (macros/incremental_changes.sql): a run recomputes the subscriptions
    int_saas_changed_subscriptions lists, and every subscription of a workspace whose as-of day,
    reporting currency or exchange rates on that day moved (its MRR today is taken and converted on that day). -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
-- the workspaces' state compared (saas_moved_workspaces): {{ ref('int_fx_rates_ranged') }}
with subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    where {{ saas_rebuilt_rows('subscriptions', 'subscriptions') }}
),

subscription_changes as (
    select * from {{ ref('int_subscription_mrr_changes') }} as subscription_changes
    where {{ saas_rebuilt_rows('subscriptions', 'subscription_changes') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

-- each subscription's latest change (its MRR today) and its paying days, from its change points
latest_changes as (
    select *
    from (
        select
            *,
            row_number() over (partition by workspace_id, subscription_id order by change_date desc) as recency
        from subscription_changes
    ) as ranked
    where recency = 1
),

mrr_history as (
    select
        subscription_changes.workspace_id,
        subscription_changes.subscription_id,
        min(case when subscription_changes.mrr_after > 0 then subscription_changes.change_date end) as first_paying_date,
        -- the day before its MRR last dropped to 0
        max(case when subscription_changes.mrr_before > 0 and subscription_changes.mrr_after = 0
            then subscription_changes.change_date end) as last_drop_date
    from subscription_changes
    group by subscription_changes.workspace_id, subscription_changes.subscription_id
),

current_mrr as (
    select
        latest_changes.workspace_id,
        latest_changes.subscription_id,
        mrr_history.first_paying_date,
        case
            when latest_changes.mrr_after > 0 then workspaces.as_of_day
            else cast({{ dbt.dateadd('day', -1, 'mrr_history.last_drop_date') }} as date)
        end as last_paying_date,
        -- null where the rate is missing (docs/metrics.md, "A missing rate")
        {{ fx_convert('latest_changes.mrr_after', 'latest_changes.currency', 'workspaces.reporting_currency', 9,
                      'billing', 'reporting') }} as current_mrr,
        latest_changes.mrr_after as current_mrr_in_billing_currency
    from latest_changes
    inner join mrr_history
        on mrr_history.workspace_id = latest_changes.workspace_id
        and mrr_history.subscription_id = latest_changes.subscription_id
    inner join workspaces
        on workspaces.workspace_id = latest_changes.workspace_id
    {{ fx_rate_joins('workspaces.as_of_day', 'latest_changes.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
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
        current_mrr.first_paying_date,
        current_mrr.last_paying_date,
        -- no change point: no MRR ever, 0; a change point's MRR without a rate stays null (unknown)
        cast(case when current_mrr.subscription_id is null then 0 else current_mrr.current_mrr end as decimal(38, 6))
            as current_mrr,
        cast(coalesce(current_mrr.current_mrr_in_billing_currency, 0) as decimal(38, 6)) as current_mrr_in_billing_currency
    from subscriptions
    left join current_mrr
        on current_mrr.workspace_id = subscriptions.workspace_id
        and current_mrr.subscription_id = subscriptions.subscription_id
)

select * from final
