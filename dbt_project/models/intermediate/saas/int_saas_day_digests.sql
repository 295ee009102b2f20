{#- A fingerprint per workspace and local day of every input row the SaaS daily tables read for that
    day (macro row_digest): the subscriptions' MRR change points (with their plan, which slices
    them) and the customers' (which make the movements and the retention cohorts), the trials
    ending that day (with the subscription's first paying day: converted or not); the workspace's
    timezone and reporting currency on 1900-01-01 (a change rebuilds it in full); the exchange
    rates on their first day, under the workspace '*'. int_saas_refresh_windows compares it with
    the digests the daily tables were built from (macros/incremental_days.sql). -#}
with workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

subscription_changes as (
    select * from {{ ref('int_subscription_mrr_changes') }}
),

customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }}
),

plans as (
    select * from {{ ref('int_subscription_plans') }}
),

subscriptions as (
    select * from {{ ref('subscriptions') }}
),

input_rows as (
    select subscription_changes.workspace_id, subscription_changes.change_date as date_day,
        {{ row_digest(['subscription_changes.subscription_id', 'subscription_changes.customer_id',
                       'subscription_changes.currency', 'subscription_changes.mrr_before',
                       'subscription_changes.mrr_after', 'plans.plan']) }} as row_hash
    from subscription_changes
    left join plans
        on plans.workspace_id = subscription_changes.workspace_id
        and plans.subscription_id = subscription_changes.subscription_id

    union all

    select workspace_id, change_date as date_day,
        {{ row_digest(['customer_id', 'currency', 'mrr_before', 'mrr_after', 'had_mrr_before']) }} as row_hash
    from customer_changes

    union all

    -- as saas_daily_metrics dates a trial: the day it ended (or was canceled, if earlier)
    select subscriptions.workspace_id,
        {{ local_date('case when subscriptions.ended_at < subscriptions.trial_ended_at then subscriptions.ended_at else subscriptions.trial_ended_at end',
                      'workspaces.timezone') }} as date_day,
        {{ row_digest(['subscriptions.subscription_id', 'subscriptions.first_paying_date']) }} as row_hash
    from subscriptions
    inner join workspaces on workspaces.workspace_id = subscriptions.workspace_id
    where subscriptions.trial_started_at is not null and subscriptions.trial_ended_at is not null
),

{{ day_digests('workspaces', 'input_rows') }}
