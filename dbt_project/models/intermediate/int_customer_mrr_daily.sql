{{ config(materialized='table') }}
{#- The daily customer-level MRR spine: one row per customer and local day, from the customer's
    first day with MRR data to the as-of day (gaps between subscriptions are days with MRR 0), with
    the previous day's MRR and whether the customer ever had MRR before, which the movements
    classify. Amounts in the customer's billing currency and in the reporting currency; the
    previous day's MRR is converted at the same day's rate, so movements hold no FX effect. -#}
with subscription_days as (
    select * from {{ ref('int_subscription_mrr_daily') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_saas_days') }}
),

customer_days_with_data as (
    select
        workspace_id,
        customer_id,
        date_day,
        -- a Stripe customer bills in one currency
        max(currency) as currency,
        sum(mrr) as mrr,
        sum(case when mrr > 0 then 1 else 0 end) as active_subscriptions
    from subscription_days
    group by workspace_id, customer_id, date_day
),

customer_bounds as (
    select
        customer_days_with_data.workspace_id,
        customer_days_with_data.customer_id,
        max(customer_days_with_data.currency) as currency,
        max(workspaces.reporting_currency) as reporting_currency,
        min(customer_days_with_data.date_day) as first_day,
        max(workspaces.as_of_day) as last_day
    from customer_days_with_data
    inner join workspaces on workspaces.workspace_id = customer_days_with_data.workspace_id
    group by customer_days_with_data.workspace_id, customer_days_with_data.customer_id
),

spine as (
    select
        customer_bounds.workspace_id,
        customer_bounds.customer_id,
        customer_bounds.currency,
        customer_bounds.reporting_currency,
        days.date_day
    from customer_bounds
    inner join days
        on days.date_day >= customer_bounds.first_day
        and days.date_day <= customer_bounds.last_day
),

valued as (
    select
        spine.workspace_id,
        spine.customer_id,
        spine.currency,
        spine.date_day,
        coalesce(customer_days_with_data.mrr, 0) as mrr,
        -- the day's rate from the billing to the reporting currency (docs/metrics.md, Currency)
        {{ fx_rate('spine.currency', 'spine.reporting_currency', 'billing', 'reporting') }} as fx_rate,
        coalesce(customer_days_with_data.active_subscriptions, 0) as active_subscriptions
    from spine
    left join customer_days_with_data
        on customer_days_with_data.workspace_id = spine.workspace_id
        and customer_days_with_data.customer_id = spine.customer_id
        and customer_days_with_data.date_day = spine.date_day
    {{ fx_rate_joins('spine.date_day', 'spine.currency', 'spine.reporting_currency', 'billing', 'reporting') }}
),

with_previous as (
    select
        *,
        coalesce(lag(mrr) over (partition by workspace_id, customer_id order by date_day), 0) as previous_mrr,
        coalesce(max(case when mrr > 0 then 1 else 0 end) over (
            partition by workspace_id, customer_id order by date_day
            rows between unbounded preceding and 1 preceding
        ), 0) as had_mrr_before
    from valued
),

final as (
    select
        workspace_id,
        customer_id,
        date_day,
        currency,
        cast(mrr as decimal(38, 9)) as mrr,
        cast(previous_mrr as decimal(38, 9)) as previous_mrr,
        cast(mrr * fx_rate as decimal(38, 9)) as mrr_reporting,
        -- yesterday's MRR at today's rate: a movement is the customer's change, not an FX move
        cast(previous_mrr * fx_rate as decimal(38, 9)) as previous_mrr_reporting,
        active_subscriptions,
        had_mrr_before = 1 as had_mrr_before
    from with_previous
)

select * from final
