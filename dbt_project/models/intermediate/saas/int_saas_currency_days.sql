{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('saas', 'date_day') }}"
) }}
{#- The SaaS stocks and counts per workspace, billing currency and local day, from the currency's
    first day with MRR data to the workspace's as-of day: running sums of the day's changes
    (int_subscription_mrr_changes, int_customer_mrr_changes), never a row per subscription per day.
    MRR is summed in the billing currency first, then converted at the day's rate (docs/metrics.md,
    "Currency"); a missing rate leaves mrr_reporting null wherever there is MRR to convert.
    saas_daily_metrics sums the currencies; saas_daily_slices splits by them. -#}
-- depends_on: {{ ref('int_saas_refresh_windows') }}
with subscription_changes as (
    select * from {{ ref('int_subscription_mrr_changes') }}
),

customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_days') }}
),

customer_deltas as (
    select
        workspace_id,
        currency,
        change_date,
        sum(mrr_after - mrr_before) as mrr_delta,
        sum(case when mrr_after > 0 then 1 else 0 end - case when mrr_before > 0 then 1 else 0 end)
            as active_customers_delta
    from customer_changes
    group by workspace_id, currency, change_date
),

subscription_deltas as (
    select
        workspace_id,
        currency,
        change_date,
        sum(case when mrr_after > 0 then 1 else 0 end - case when mrr_before > 0 then 1 else 0 end)
            as active_subscriptions_delta,
        -- the subscription's first day with MRR > 0
        sum(case when change_date = first_paying_day then 1 else 0 end) as new_subscriptions,
        sum(case when mrr_before > 0 and mrr_after = 0 then 1 else 0 end) as churned_subscriptions
    from (
        select
            *,
            min(case when mrr_after > 0 then change_date end) over (
                partition by workspace_id, subscription_id
            ) as first_paying_day
        from subscription_changes
    ) as flagged
    group by workspace_id, currency, change_date
),

spine as (
    select currencies.workspace_id, currencies.currency, workspaces.reporting_currency, days.date_day
    from (
        select workspace_id, currency, min(change_date) as first_day
        from subscription_changes
        group by workspace_id, currency
    ) as currencies
    inner join workspaces
        on workspaces.workspace_id = currencies.workspace_id
    inner join days
        on days.date_day >= currencies.first_day
        and days.date_day <= workspaces.as_of_day
    -- the days this run builds (all of them in a full build; macros/incremental_days.sql)
    where {{ refresh_days('saas', 'currencies.workspace_id', 'days.date_day') }}
),

-- the stocks at the end of the day before the first day built: its changes summed (0 in a full build)
carries as (
    select
        workspace_id,
        currency,
        sum(mrr_delta) as mrr,
        sum(active_customers_delta) as active_customers,
        sum(active_subscriptions_delta) as active_subscriptions
    from (
        select workspace_id, currency, change_date, mrr_delta, active_customers_delta,
            0 as active_subscriptions_delta
        from customer_deltas
        union all
        select workspace_id, currency, change_date, 0 as mrr_delta, 0 as active_customers_delta,
            active_subscriptions_delta
        from subscription_deltas
    ) as deltas
    where not ({{ refresh_days('saas', 'deltas.workspace_id', 'deltas.change_date') }})
    group by workspace_id, currency
),

running as (
    select
        spine.workspace_id,
        spine.currency,
        spine.reporting_currency,
        spine.date_day,
        coalesce(carries.mrr, 0) + sum(coalesce(customer_deltas.mrr_delta, 0)) over by_day as mrr,
        coalesce(carries.active_customers, 0)
            + sum(coalesce(customer_deltas.active_customers_delta, 0)) over by_day as active_customers,
        coalesce(carries.active_subscriptions, 0)
            + sum(coalesce(subscription_deltas.active_subscriptions_delta, 0)) over by_day as active_subscriptions,
        coalesce(subscription_deltas.new_subscriptions, 0) as new_subscriptions,
        coalesce(subscription_deltas.churned_subscriptions, 0) as churned_subscriptions
    from spine
    left join carries
        on carries.workspace_id = spine.workspace_id
        and carries.currency = spine.currency
    left join customer_deltas
        on customer_deltas.workspace_id = spine.workspace_id
        and customer_deltas.currency = spine.currency
        and customer_deltas.change_date = spine.date_day
    left join subscription_deltas
        on subscription_deltas.workspace_id = spine.workspace_id
        and subscription_deltas.currency = spine.currency
        and subscription_deltas.change_date = spine.date_day
    window by_day as (
        partition by spine.workspace_id, spine.currency order by spine.date_day
        rows between unbounded preceding and current row
    )
),

final as (
    select
        running.workspace_id,
        running.currency,
        running.date_day,
        cast(running.mrr as decimal(38, 9)) as mrr,
        {{ fx_convert('running.mrr', 'running.currency', 'running.reporting_currency', 9, 'billing', 'reporting') }}
            as mrr_reporting,
        cast(running.active_customers as bigint) as active_customers,
        cast(running.active_subscriptions as bigint) as active_subscriptions,
        cast(running.new_subscriptions as bigint) as new_subscriptions,
        cast(running.churned_subscriptions as bigint) as churned_subscriptions
    from running
    {{ fx_rate_joins('running.date_day', 'running.currency', 'running.reporting_currency', 'billing', 'reporting') }}
)

select * from final
