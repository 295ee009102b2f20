{#- One row per Stripe customer (deleted ones flagged), with their MRR today and their MRR history
    in brief: when they first paid, and how many subscriptions they had. -#}
with customers as (
    select * from {{ ref('stg_stripe__customers') }}
),

subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
),

customer_days as (
    select * from {{ ref('int_customer_mrr_daily') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

subscription_counts as (
    select workspace_id, customer_id, count(*) as subscriptions
    from subscriptions
    group by workspace_id, customer_id
),

mrr_history as (
    select
        customer_days.workspace_id,
        customer_days.customer_id,
        min(case when customer_days.mrr > 0 then customer_days.date_day end) as first_paying_date,
        sum(case when customer_days.date_day = workspaces.as_of_day then customer_days.mrr_reporting else 0 end) as current_mrr,
        sum(case when customer_days.date_day = workspaces.as_of_day then customer_days.mrr else 0 end)
            as current_mrr_in_billing_currency
    from customer_days
    inner join workspaces on workspaces.workspace_id = customer_days.workspace_id
    group by customer_days.workspace_id, customer_days.customer_id
),

final as (
    select
        customers.workspace_id,
        customers.customer_id,
        customers.email,
        customers.customer_name,
        customers.currency,
        customers.created_at,
        customers.is_delinquent,
        customers.is_deleted,
        customers.deleted_at,
        coalesce(subscription_counts.subscriptions, 0) as subscriptions,
        mrr_history.first_paying_date,
        cast(coalesce(mrr_history.current_mrr, 0) as decimal(38, 6)) as current_mrr,
        cast(coalesce(mrr_history.current_mrr_in_billing_currency, 0) as decimal(38, 6)) as current_mrr_in_billing_currency,
        coalesce(mrr_history.current_mrr, 0) > 0 as is_active
    from customers
    left join subscription_counts
        on subscription_counts.workspace_id = customers.workspace_id
        and subscription_counts.customer_id = customers.customer_id
    left join mrr_history
        on mrr_history.workspace_id = customers.workspace_id
        and mrr_history.customer_id = customers.customer_id
)

select * from final
