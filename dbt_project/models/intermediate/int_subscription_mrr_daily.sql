{{ config(materialized='table') }}
{#- One row per subscription and local day, from the subscription's first day with MRR data to the
    day its MRR ends (or the workspace's as-of day): its MRR at the END of the day, in the
    subscription's currency and in the workspace's reporting currency (that day's rate).
    A segment valid on [from, to) covers the days local_date(from) <= D < local_date(to): a change
    at 00:00 belongs to the new day, and a state lasting less than a day inside one day never shows.
    Days a subscription has no segment for (between an end and a restart) have MRR 0. -#}
with segments as (
    select * from {{ ref('int_subscription_mrr_segments') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_saas_days') }}
),

segment_days as (
    select
        segments.workspace_id,
        segments.customer_id,
        segments.subscription_id,
        segments.currency,
        segments.mrr,
        segments.mrr_source,
        {{ local_date('segments.valid_from_at', 'workspaces.timezone') }} as first_day,
        coalesce(
            {{ local_date('segments.valid_to_at', 'workspaces.timezone') }},
            cast({{ dbt.dateadd('day', 1, 'workspaces.as_of_day') }} as date)
        ) as end_day,
        workspaces.as_of_day,
        workspaces.reporting_currency
    from segments
    inner join workspaces on workspaces.workspace_id = segments.workspace_id
),

covering as (
    select * from segment_days where end_day > first_day
),

subscription_bounds as (
    select
        workspace_id,
        subscription_id,
        max(customer_id) as customer_id,
        max(currency) as currency,
        max(reporting_currency) as reporting_currency,
        min(first_day) as first_day,
        -- include the day the MRR ends, so the drop to 0 is there, but never past the as-of day
        least(max(end_day), max(as_of_day)) as last_day
    from covering
    group by workspace_id, subscription_id
),

spine as (
    select
        subscription_bounds.workspace_id,
        subscription_bounds.customer_id,
        subscription_bounds.subscription_id,
        subscription_bounds.currency,
        subscription_bounds.reporting_currency,
        days.date_day
    from subscription_bounds
    inner join days
        on days.date_day >= subscription_bounds.first_day
        and days.date_day <= subscription_bounds.last_day
),

valued as (
    select
        spine.workspace_id,
        spine.customer_id,
        spine.subscription_id,
        spine.currency,
        spine.reporting_currency,
        spine.date_day,
        coalesce(sum(covering.mrr), 0) as mrr,
        max(covering.mrr_source) as mrr_source
    from spine
    left join covering
        on covering.workspace_id = spine.workspace_id
        and covering.subscription_id = spine.subscription_id
        and covering.first_day <= spine.date_day
        and covering.end_day > spine.date_day
    group by spine.workspace_id, spine.customer_id, spine.subscription_id, spine.currency,
        spine.reporting_currency, spine.date_day
),

final as (
    select
        valued.workspace_id,
        valued.customer_id,
        valued.subscription_id,
        valued.date_day,
        valued.currency,
        cast(valued.mrr as decimal(38, 9)) as mrr,
        cast(valued.mrr * {{ fx_rate('valued.currency', 'valued.reporting_currency', 'billing', 'reporting') }} as decimal(38, 9)) as mrr_reporting,
        valued.mrr_source
    from valued
    {{ fx_rate_joins('valued.date_day', 'valued.currency', 'valued.reporting_currency', 'billing', 'reporting') }}
)

select * from final
