{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('saas', 'date') }}"
) }}
{#- The SaaS metrics of saas_daily_metrics split by the pack's dimensions (pipelines/packs): one row
    per workspace, day, metric, dimension and dimension value, in long form, in the reporting
    currency at each day's rate. The slices of a metric along one dimension add up to the metric.
    Built from change points: stocks are running sums of the day's changes per plan and currency,
    converted at the day's rate (never a row per subscription per day).
    - plan: a subscription's plan is the product of its largest current item (by monthly amount);
      movements, classified per customer in mrr_movements, are split by plan through each of the
      customer's subscriptions' own change that day;
    - billing_currency: the customer's (Stripe's) currency (int_saas_currency_days);
    - movement_type: the five movements of net_new_mrr, each with its sign in net_new_mrr.
    Contraction and churn are positive amounts, as in saas_daily_metrics. ARPA is not sliced: its
    parts (mrr, active_customers) are. Zero slices are left out. -#}
-- depends_on: {{ ref('int_saas_refresh_windows') }}
with {{ saas_slice_parts() }},

stock_slices as (
    select
        workspace_id,
        date_day as date,
        'plan' as dimension,
        plan as dimension_value,
        sum(mrr) as mrr,
        sum(active_subscriptions) as active_subscriptions,
        sum(new_subscriptions) as new_subscriptions,
        sum(churned_subscriptions) as churned_subscriptions,
        cast(null as bigint) as active_customers
    from plan_days_converted
    group by workspace_id, date_day, plan
    union all
    select
        workspace_id,
        date_day as date,
        'billing_currency' as dimension,
        currency as dimension_value,
        mrr_reporting as mrr,
        active_subscriptions,
        new_subscriptions,
        churned_subscriptions,
        active_customers
    from currency_days
    where {{ refresh_days('saas', 'currency_days.workspace_id', 'currency_days.date_day') }}
),

movement_slices as (
    {%- for dimension in ['plan', 'billing_currency', 'movement_type'] %}
    select
        workspace_id,
        date_day as date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        {{ saas_movement_sums() }}
    from movement_parts
    group by workspace_id, date_day, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

long_form as (
    {{ slices_long_form(saas_slice_measures('stock_slices', 'movement_slices', customers=true)) }}
),

final as (
    {{ kept_slices('long_form', 'saas') }}
)

select * from final
