{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('saas_customers') }}"
) }}
{#- One row per Stripe customer (deleted ones flagged), with their MRR today and their MRR history
    in brief: when they first paid, and how many subscriptions they had.

    Incremental (macros/incremental_changes.sql): a run recomputes the customers
    int_saas_changed_customers lists, and every customer of a workspace whose as-of day, reporting
    currency or exchange rates on that day moved (their MRR today is converted on that day). -#}
-- depends_on: {{ ref('int_saas_changed_customers') }}
-- the workspaces' state compared (saas_moved_workspaces): {{ ref('int_fx_rates_ranged') }}
with customers as (
    select * from {{ ref('stg_stripe__customers') }} as customers
    where {{ saas_rebuilt_rows('saas_customers', 'customers') }}
),

subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    where {{ saas_rebuilt_rows('saas_customers', 'subscriptions') }}
),

subscription_counts as (
    select workspace_id, customer_id, count(*) as subscriptions
    from subscriptions
    group by workspace_id, customer_id
),

customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }} as customer_changes
    where {{ saas_rebuilt_rows('saas_customers', 'customer_changes') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

-- each customer's first paying day and MRR today, from their change points
mrr_history as (
    select
        ranked.workspace_id,
        ranked.customer_id,
        ranked.first_paying_date,
        -- null where the rate is missing (docs/metrics.md, "A missing rate")
        {{ fx_convert('ranked.mrr_after', 'ranked.currency', 'workspaces.reporting_currency', 9,
                      'billing', 'reporting') }} as current_mrr,
        ranked.mrr_after as current_mrr_in_billing_currency
    from (
        select
            *,
            min(case when mrr_after > 0 then change_date end) over (
                partition by workspace_id, customer_id
            ) as first_paying_date,
            row_number() over (partition by workspace_id, customer_id order by change_date desc) as recency
        from customer_changes
    ) as ranked
    inner join workspaces
        on workspaces.workspace_id = ranked.workspace_id
    {{ fx_rate_joins('workspaces.as_of_day', 'ranked.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
    where ranked.recency = 1
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
        -- no change point: no MRR ever, 0; a change point's MRR without a rate stays null (unknown)
        cast(case when mrr_history.customer_id is null then 0 else mrr_history.current_mrr end as decimal(38, 6))
            as current_mrr,
        cast(coalesce(mrr_history.current_mrr_in_billing_currency, 0) as decimal(38, 6)) as current_mrr_in_billing_currency,
        -- from the billing currency's figure, which needs no rate
        coalesce(mrr_history.current_mrr_in_billing_currency, 0) > 0 as is_active
    from customers
    left join subscription_counts
        on subscription_counts.workspace_id = customers.workspace_id
        and subscription_counts.customer_id = customers.customer_id
    left join mrr_history
        on mrr_history.workspace_id = customers.workspace_id
        and mrr_history.customer_id = customers.customer_id
)

select * from final
