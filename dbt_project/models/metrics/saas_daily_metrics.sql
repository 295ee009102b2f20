{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('saas', 'date') }}"
) }}
{#- One row per SaaS workspace and local day, from its first day with MRR data to its as-of day
    (docs/metrics.md, "SaaS"): MRR at the end of the day (the currencies' running sums of MRR
    changes, int_saas_currency_days), the day's movements, and the SaaS ratios over the 30 days (or
    the month) ending that day, in the reporting currency. Movements come from mrr_movements, so
    they are classified in one place; contraction and churn are positive amounts. -#}
-- depends_on: {{ ref('int_saas_refresh_windows') }}
with workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_days') }}
),

currency_days as (
    select * from {{ ref('int_saas_currency_days') }}
),

movements as (
    select * from {{ ref('mrr_movements') }}
),

retention as (
    select * from {{ ref('int_saas_retention_daily') }}
),

subscriptions as (
    select * from {{ ref('subscriptions') }}
),

-- every day from the workspace's first day with MRR data (even 0: a trial) to its as-of day
workspace_days as (
    select workspaces.workspace_id, days.date_day
    from workspaces
    inner join (
        select workspace_id, min(date_day) as first_day from currency_days group by workspace_id
    ) as firsts on firsts.workspace_id = workspaces.workspace_id
    inner join days
        on days.date_day >= firsts.first_day
        and days.date_day <= workspaces.as_of_day
    -- the days this run builds and the 30 before them, which their 30-day windows read
    -- (macros/incremental_days.sql)
    where {{ refresh_days('saas', 'workspaces.workspace_id', 'days.date_day', days_before=30) }}
),

-- the currencies' running sums, each converted at the day's rate; a missing rate leaves MRR null
currency_totals as (
    select
        workspace_id,
        date_day,
        case when count(*) = count(mrr_reporting) then sum(mrr_reporting) end as mrr,
        -- counts stay integers (Postgres sums bigints into numeric)
        cast(sum(active_customers) as bigint) as active_customers,
        cast(sum(active_subscriptions) as bigint) as active_subscriptions,
        cast(sum(new_subscriptions) as bigint) as new_subscriptions,
        cast(sum(churned_subscriptions) as bigint) as churned_subscriptions
    from currency_days
    group by workspace_id, date_day
),

movement_totals as (
    select
        workspace_id,
        change_date as date_day,
        sum(case when movement_type = 'new' then delta else 0 end) as new_mrr,
        sum(case when movement_type = 'expansion' then delta else 0 end) as expansion_mrr,
        -- lost MRR is stored as a positive amount
        sum(case when movement_type = 'contraction' then -delta else 0 end) as contraction_mrr,
        sum(case when movement_type = 'churn' then -delta else 0 end) as churned_mrr,
        sum(case when movement_type = 'reactivation' then delta else 0 end) as reactivation_mrr,
        sum(delta) as net_new_mrr,
        sum(case when movement_type = 'churn' then 1 else 0 end) as churned_customers,
        -- customers who started paying (new or back): they too could churn within a window
        sum(case when movement_type in ('new', 'reactivation') then 1 else 0 end) as started_customers
    from movements
    group by workspace_id, change_date
),

-- trials by the local day they ended (at their end, or earlier if canceled), and whether they converted
trials as (
    select workspace_id, trial_end_day as date_day, count(*) as trials_ended,
        sum(case when first_paying_date = trial_end_day then 1 else 0 end) as trials_converted
    from (
        select
            subscriptions.workspace_id,
            subscriptions.first_paying_date,
            {{ local_date('case when subscriptions.ended_at < subscriptions.trial_ended_at then subscriptions.ended_at else subscriptions.trial_ended_at end',
                          'workspaces.timezone') }} as trial_end_day
        from subscriptions
        inner join workspaces on workspaces.workspace_id = subscriptions.workspace_id
        where subscriptions.trial_started_at is not null and subscriptions.trial_ended_at is not null
    ) as trial_ends
    group by workspace_id, trial_end_day
),

daily as (
    select
        workspace_days.workspace_id,
        workspace_days.date_day as date,
        coalesce(currency_totals.mrr, 0) as mrr,
        coalesce(movement_totals.new_mrr, 0) as new_mrr,
        coalesce(movement_totals.expansion_mrr, 0) as expansion_mrr,
        coalesce(movement_totals.contraction_mrr, 0) as contraction_mrr,
        coalesce(movement_totals.churned_mrr, 0) as churned_mrr,
        coalesce(movement_totals.reactivation_mrr, 0) as reactivation_mrr,
        coalesce(movement_totals.net_new_mrr, 0) as net_new_mrr,
        coalesce(currency_totals.active_subscriptions, 0) as active_subscriptions,
        coalesce(currency_totals.active_customers, 0) as active_customers,
        coalesce(currency_totals.new_subscriptions, 0) as new_subscriptions,
        coalesce(currency_totals.churned_subscriptions, 0) as churned_subscriptions,
        coalesce(movement_totals.churned_customers, 0) as churned_customers,
        coalesce(movement_totals.started_customers, 0) as started_customers,
        coalesce(trials.trials_ended, 0) as trials_ended,
        coalesce(trials.trials_converted, 0) as trials_converted,
        coalesce(retention.mrr_at_month_start, 0) as mrr_at_month_start,
        coalesce(retention.retained_mrr, 0) as retained_mrr,
        coalesce(retention.retained_gross_mrr, 0) as retained_gross_mrr
    from workspace_days
    left join currency_totals
        on currency_totals.workspace_id = workspace_days.workspace_id
        and currency_totals.date_day = workspace_days.date_day
    left join movement_totals
        on movement_totals.workspace_id = workspace_days.workspace_id
        and movement_totals.date_day = workspace_days.date_day
    left join trials
        on trials.workspace_id = workspace_days.workspace_id
        and trials.date_day = workspace_days.date_day
    left join retention
        on retention.workspace_id = workspace_days.workspace_id
        and retention.date_day = workspace_days.date_day
),

-- the 30 days ending each day: the day and the 29 before; "30 days ago" is the end of the day before them
windowed as (
    select
        *,
        sum(churned_customers) over last_30_days as churned_customers_30d,
        coalesce(lag(active_customers, 30) over by_day, 0) + sum(started_customers) over last_30_days
            as customers_at_risk_30d,
        sum(churned_mrr) over last_30_days as churned_mrr_30d,
        coalesce(lag(mrr, 30) over by_day, 0) + sum(new_mrr + reactivation_mrr) over last_30_days
            as mrr_at_risk_30d,
        sum(trials_ended) over last_30_days as trials_ended_30d,
        sum(trials_converted) over last_30_days as trials_converted_30d
    from daily
    window
        by_day as (partition by workspace_id order by date),
        last_30_days as (partition by workspace_id order by date rows between 29 preceding and current row)
),

final as (
    select
        workspace_id,
        date,
        cast(mrr as decimal(38, 6)) as mrr,
        cast(12 * mrr as decimal(38, 6)) as arr,
        cast(new_mrr as decimal(38, 6)) as new_mrr,
        cast(expansion_mrr as decimal(38, 6)) as expansion_mrr,
        cast(contraction_mrr as decimal(38, 6)) as contraction_mrr,
        cast(churned_mrr as decimal(38, 6)) as churned_mrr,
        cast(reactivation_mrr as decimal(38, 6)) as reactivation_mrr,
        cast(net_new_mrr as decimal(38, 6)) as net_new_mrr,
        active_subscriptions,
        active_customers,
        new_subscriptions,
        churned_subscriptions,
        cast({{ metric_ratio('arpa') }} as decimal(38, 6)) as arpa,
        -- a count (Postgres sums bigints into numeric)
        cast(churned_customers_30d as bigint) as churned_customers_30d,
        cast(customers_at_risk_30d as bigint) as customers_at_risk_30d,
        cast({{ metric_ratio('subscriber_churn_rate') }} as decimal(38, 6)) as subscriber_churn_rate,
        cast(churned_mrr_30d as decimal(38, 6)) as churned_mrr_30d,
        cast(mrr_at_risk_30d as decimal(38, 6)) as mrr_at_risk_30d,
        cast({{ metric_ratio('mrr_churn_rate') }} as decimal(38, 6)) as mrr_churn_rate,
        cast(mrr_at_month_start as decimal(38, 6)) as mrr_at_month_start,
        cast(retained_mrr as decimal(38, 6)) as retained_mrr,
        cast(retained_gross_mrr as decimal(38, 6)) as retained_gross_mrr,
        -- from the retention sums' 12 decimals (int_saas_retention_daily): the month's start may be small
        cast({{ metric_ratio('net_revenue_retention', parts_scale=12) }} as decimal(38, 6)) as net_revenue_retention,
        cast({{ metric_ratio('gross_revenue_retention', parts_scale=12) }} as decimal(38, 6)) as gross_revenue_retention,
        cast(trials_ended_30d as bigint) as trials_ended_30d,
        cast(trials_converted_30d as bigint) as trials_converted_30d,
        cast({{ metric_ratio('trial_conversion_rate') }} as decimal(38, 6)) as trial_conversion_rate,
        -- ARPA / subscriber churn rate: null without paying customers or without churn
        cast(case when active_customers > 0 and churned_customers_30d > 0
            then (mrr / active_customers) * customers_at_risk_30d / churned_customers_30d end
            as decimal(38, 6)) as ltv
    from windowed
    where {{ refresh_days('saas', 'windowed.workspace_id', 'windowed.date') }}
)

select * from final
where {{ has_fx_rates('workspace_id', 'saas') }}  -- a missing FX rate leaves the workspace out: docs/metrics.md, Currency
