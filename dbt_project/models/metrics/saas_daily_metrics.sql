{#- One row per SaaS workspace and local day, from its first day with MRR data to its as-of day
    (docs/metrics.md, "SaaS"): MRR at the end of the day and the day's movements, in the reporting
    currency. Movements come from mrr_movements, so they are classified in one place; contraction and
    churn are the MRR lost, as positive amounts. -#}
with workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_saas_days') }}
),

customer_days as (
    select * from {{ ref('int_customer_mrr_daily') }}
),

subscription_days as (
    select * from {{ ref('int_subscription_mrr_daily') }}
),

movements as (
    select * from {{ ref('mrr_movements') }}
),

workspace_days as (
    select workspaces.workspace_id, days.date_day
    from workspaces
    inner join (
        select workspace_id, min(date_day) as first_day from customer_days group by workspace_id
    ) as firsts on firsts.workspace_id = workspaces.workspace_id
    inner join days
        on days.date_day >= firsts.first_day
        and days.date_day <= workspaces.as_of_day
),

customer_totals as (
    select
        workspace_id,
        date_day,
        sum(mrr_reporting) as mrr,
        sum(case when mrr > 0 then 1 else 0 end) as active_customers
    from customer_days
    group by workspace_id, date_day
),

subscription_flags as (
    select
        workspace_id,
        subscription_id,
        date_day,
        mrr,
        coalesce(lag(mrr) over (partition by workspace_id, subscription_id order by date_day), 0) as previous_mrr,
        min(case when mrr > 0 then date_day end) over (partition by workspace_id, subscription_id) as first_paying_day
    from subscription_days
),

subscription_totals as (
    select
        workspace_id,
        date_day,
        sum(case when mrr > 0 then 1 else 0 end) as active_subscriptions,
        sum(case when date_day = first_paying_day then 1 else 0 end) as new_subscriptions,
        sum(case when previous_mrr > 0 and mrr = 0 then 1 else 0 end) as churned_subscriptions
    from subscription_flags
    group by workspace_id, date_day
),

movement_totals as (
    select
        workspace_id,
        change_date as date_day,
        sum(case when movement_type = 'new' then delta else 0 end) as new_mrr,
        sum(case when movement_type = 'expansion' then delta else 0 end) as expansion_mrr,
        sum(case when movement_type = 'contraction' then -delta else 0 end) as contraction_mrr,
        sum(case when movement_type = 'churn' then -delta else 0 end) as churned_mrr,
        sum(case when movement_type = 'reactivation' then delta else 0 end) as reactivation_mrr
    from movements
    group by workspace_id, change_date
),

final as (
    select
        workspace_days.workspace_id,
        workspace_days.date_day as date,
        cast(coalesce(customer_totals.mrr, 0) as decimal(38, 6)) as mrr,
        cast(12 * coalesce(customer_totals.mrr, 0) as decimal(38, 6)) as arr,
        cast(coalesce(movement_totals.new_mrr, 0) as decimal(38, 6)) as new_mrr,
        cast(coalesce(movement_totals.expansion_mrr, 0) as decimal(38, 6)) as expansion_mrr,
        cast(coalesce(movement_totals.contraction_mrr, 0) as decimal(38, 6)) as contraction_mrr,
        cast(coalesce(movement_totals.churned_mrr, 0) as decimal(38, 6)) as churned_mrr,
        cast(coalesce(movement_totals.reactivation_mrr, 0) as decimal(38, 6)) as reactivation_mrr,
        cast(coalesce(movement_totals.new_mrr + movement_totals.expansion_mrr + movement_totals.reactivation_mrr
            - movement_totals.contraction_mrr - movement_totals.churned_mrr, 0) as decimal(38, 6)) as net_new_mrr,
        coalesce(subscription_totals.active_subscriptions, 0) as active_subscriptions,
        coalesce(customer_totals.active_customers, 0) as active_customers,
        coalesce(subscription_totals.new_subscriptions, 0) as new_subscriptions,
        coalesce(subscription_totals.churned_subscriptions, 0) as churned_subscriptions,
        cast(case when customer_totals.active_customers > 0
            then customer_totals.mrr / customer_totals.active_customers end as decimal(38, 6)) as arpa
    from workspace_days
    left join customer_totals
        on customer_totals.workspace_id = workspace_days.workspace_id
        and customer_totals.date_day = workspace_days.date_day
    left join subscription_totals
        on subscription_totals.workspace_id = workspace_days.workspace_id
        and subscription_totals.date_day = workspace_days.date_day
    left join movement_totals
        on movement_totals.workspace_id = workspace_days.workspace_id
        and movement_totals.date_day = workspace_days.date_day
)

select * from final
