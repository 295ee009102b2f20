{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('int_subscription_mrr_changes') }}"
) }}
{#- The days each subscription's MRR changes (docs/metrics.md, "Change points"): one row per
    subscription and local day whose end-of-day MRR differs from the day before's, with the MRR
    before and after in the subscription's currency, up to the workspace's as-of day. Each
    subscription also has a row on its first day with MRR data, even when its MRR stays 0 there (a
    trial): the daily tables start on the workspace's first such day.

    A segment valid on [from, to) covers the local days local_date(from) <= D < local_date(to): it
    adds its MRR on its first day and takes it back on the day it ends, so a change at 00:00 belongs
    to the new day and a state lasting less than a day inside one day never shows. Between an end
    and a restart the MRR is 0. The MRR on any day is the mrr_after of the latest change up to it.

    Incremental (macros/incremental_changes.sql): a run recomputes the subscriptions
    int_saas_changed_subscriptions lists (which include those the as-of day's move reaches). -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with segments as (
    select * from {{ ref('int_subscription_mrr_segments') }} as segments
    where {{ saas_rebuilt_rows('int_subscription_mrr_changes', 'segments') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

segment_days as (
    select
        segments.workspace_id,
        segments.customer_id,
        segments.subscription_id,
        segments.currency,
        segments.mrr,
        {{ local_date('segments.valid_from_at', 'workspaces.timezone') }} as first_day,
        coalesce(
            {{ local_date('segments.valid_to_at', 'workspaces.timezone') }},
            cast({{ dbt.dateadd('day', 1, 'workspaces.as_of_day') }} as date)
        ) as end_day,
        workspaces.as_of_day
    from segments
    inner join workspaces on workspaces.workspace_id = segments.workspace_id
),

covering as (
    select * from segment_days where end_day > first_day and first_day <= as_of_day
),

deltas as (
    select workspace_id, customer_id, subscription_id, currency, first_day as change_date, mrr as delta
    from covering
    union all
    select workspace_id, customer_id, subscription_id, currency, end_day as change_date, -mrr as delta
    from covering
    where end_day <= as_of_day
),

daily as (
    select workspace_id, subscription_id, change_date, sum(delta) as delta
    from deltas
    group by workspace_id, subscription_id, change_date
),

subscription_facts as (
    -- a subscription belongs to one customer and bills in one currency
    select workspace_id, subscription_id, max(customer_id) as customer_id, max(currency) as currency
    from covering
    group by workspace_id, subscription_id
),

running as (
    select
        workspace_id,
        subscription_id,
        change_date,
        delta,
        sum(delta) over (
            partition by workspace_id, subscription_id order by change_date
            rows between unbounded preceding and current row
        ) as mrr_after,
        min(change_date) over (partition by workspace_id, subscription_id) as first_day
    from daily
),

final as (
    select
        running.workspace_id,
        subscription_facts.customer_id,
        running.subscription_id,
        subscription_facts.currency,
        running.change_date,
        cast(running.mrr_after - running.delta as decimal(38, 9)) as mrr_before,
        cast(running.mrr_after as decimal(38, 9)) as mrr_after
    from running
    inner join subscription_facts
        on subscription_facts.workspace_id = running.workspace_id
        and subscription_facts.subscription_id = running.subscription_id
    where running.delta <> 0 or running.change_date = running.first_day
)

select * from final
