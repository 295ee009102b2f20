{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('int_customer_mrr_changes') }}"
) }}
{#- The days each customer's MRR changes: one row per customer and local day whose end-of-day MRR
    (the sum over their subscriptions) differs from the day before's, in the customer's billing
    currency, and whether the customer had MRR at an earlier day's end (which makes a 0 → positive
    change a reactivation). mrr_movements classifies these rows.

    Incremental (macros/incremental_changes.sql): a run recomputes the customers
    int_saas_changed_customers lists. -#}
-- depends_on: {{ ref('int_saas_changed_customers') }}
with subscription_changes as (
    select * from {{ ref('int_subscription_mrr_changes') }} as subscription_changes
    where {{ saas_rebuilt_rows('int_customer_mrr_changes', 'subscription_changes') }}
),

daily as (
    select
        workspace_id,
        customer_id,
        change_date,
        -- a Stripe customer bills in one currency
        max(currency) as currency,
        sum(mrr_after - mrr_before) as delta
    from subscription_changes
    group by workspace_id, customer_id, change_date
),

running as (
    select
        *,
        sum(delta) over (
            partition by workspace_id, customer_id order by change_date
            rows between unbounded preceding and current row
        ) as mrr_after
    from daily
),

with_history as (
    select
        *,
        coalesce(max(case when mrr_after > 0 then 1 else 0 end) over (
            partition by workspace_id, customer_id order by change_date
            rows between unbounded preceding and 1 preceding
        ), 0) as had_mrr_before
    from running
),

final as (
    select
        workspace_id,
        customer_id,
        change_date,
        currency,
        cast(mrr_after - delta as decimal(38, 9)) as mrr_before,
        cast(mrr_after as decimal(38, 9)) as mrr_after,
        had_mrr_before = 1 as had_mrr_before
    from with_history
    where delta <> 0
)

select * from final
