{#- The parts saas_daily_slices and saas_daily_pair_slices are both sums of, as CTEs (after `with`):
    the stocks per plan and billing currency and day (`plan_days_converted`, running sums of change
    points converted at the day's rate), each customer movement split over the customer's
    subscriptions' changes of the day (`movement_parts`, with its plan and billing currency), and
    the per-currency days (`currency_days`). Definitions as in saas_daily_metrics (docs/metrics.md). -#}
{% macro saas_slice_parts() -%}
workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_days') }}
),

subscription_changes as (
    select * from {{ ref('int_subscription_mrr_changes') }}
),

currency_days as (
    select * from {{ ref('int_saas_currency_days') }}
),

movements as (
    select * from {{ ref('mrr_movements') }}
),

plans as (
    select * from {{ ref('int_subscription_plans') }}
),

subscription_facts as (
    select
        subscription_changes.workspace_id,
        subscription_changes.customer_id,
        subscription_changes.change_date,
        coalesce(plans.plan, '(none)') as plan,
        subscription_changes.currency,
        subscription_changes.mrr_after - subscription_changes.mrr_before as mrr_delta,
        case when subscription_changes.mrr_after > 0 then 1 else 0 end
            - case when subscription_changes.mrr_before > 0 then 1 else 0 end as active_subscriptions_delta,
        case when subscription_changes.change_date = min(case when subscription_changes.mrr_after > 0
            then subscription_changes.change_date end) over (
                partition by subscription_changes.workspace_id, subscription_changes.subscription_id
            ) then 1 else 0 end as new_subscriptions,
        case when subscription_changes.mrr_before > 0 and subscription_changes.mrr_after = 0
            then 1 else 0 end as churned_subscriptions
    from subscription_changes
    left join plans
        on plans.workspace_id = subscription_changes.workspace_id
        and plans.subscription_id = subscription_changes.subscription_id
),

plan_deltas as (
    select
        workspace_id,
        plan,
        currency,
        change_date,
        sum(mrr_delta) as mrr_delta,
        sum(active_subscriptions_delta) as active_subscriptions_delta,
        sum(new_subscriptions) as new_subscriptions,
        sum(churned_subscriptions) as churned_subscriptions
    from subscription_facts
    group by workspace_id, plan, currency, change_date
),

-- the stocks per plan and currency at the end of the day before the first day built (0 in a full build)
plan_carries as (
    select
        workspace_id,
        plan,
        currency,
        sum(mrr_delta) as mrr,
        sum(active_subscriptions_delta) as active_subscriptions
    from plan_deltas
    where not ({{ refresh_days('saas', 'plan_deltas.workspace_id', 'plan_deltas.change_date') }})
    group by workspace_id, plan, currency
),

-- per plan and billing currency: running sums from the first change to the as-of day
plan_days as (
    select
        spine.workspace_id,
        spine.plan,
        spine.currency,
        spine.reporting_currency,
        spine.date_day,
        coalesce(plan_carries.mrr, 0) + sum(coalesce(plan_deltas.mrr_delta, 0)) over by_day as mrr,
        coalesce(plan_carries.active_subscriptions, 0)
            + sum(coalesce(plan_deltas.active_subscriptions_delta, 0)) over by_day as active_subscriptions,
        coalesce(plan_deltas.new_subscriptions, 0) as new_subscriptions,
        coalesce(plan_deltas.churned_subscriptions, 0) as churned_subscriptions
    from (
        select firsts.workspace_id, firsts.plan, firsts.currency, workspaces.reporting_currency, days.date_day
        from (
            select workspace_id, plan, currency, min(change_date) as first_day
            from plan_deltas
            group by workspace_id, plan, currency
        ) as firsts
        inner join workspaces
            on workspaces.workspace_id = firsts.workspace_id
        inner join days
            on days.date_day >= firsts.first_day
            and days.date_day <= workspaces.as_of_day
        -- the days this run builds (all of them in a full build; macros/incremental_days.sql)
        where {{ refresh_days('saas', 'firsts.workspace_id', 'days.date_day') }}
    ) as spine
    left join plan_carries
        on plan_carries.workspace_id = spine.workspace_id
        and plan_carries.plan = spine.plan
        and plan_carries.currency = spine.currency
    left join plan_deltas
        on plan_deltas.workspace_id = spine.workspace_id
        and plan_deltas.plan = spine.plan
        and plan_deltas.currency = spine.currency
        and plan_deltas.change_date = spine.date_day
    window by_day as (
        partition by spine.workspace_id, spine.plan, spine.currency order by spine.date_day
        rows between unbounded preceding and current row
    )
),

plan_days_converted as (
    select
        plan_days.workspace_id,
        plan_days.date_day,
        plan_days.plan,
        plan_days.currency,
        {{ fx_convert('plan_days.mrr', 'plan_days.currency', 'plan_days.reporting_currency', 9, 'billing', 'reporting') }}
            as mrr,
        plan_days.active_subscriptions,
        plan_days.new_subscriptions,
        plan_days.churned_subscriptions
    from plan_days
    {{ fx_rate_joins('plan_days.date_day', 'plan_days.currency', 'plan_days.reporting_currency',
                     'billing', 'reporting') }}
),

-- each customer movement split over the customer's subscriptions' changes of that day
movement_parts as (
    select
        movements.workspace_id,
        movements.change_date as date_day,
        movements.movement_type,
        subscription_facts.plan,
        subscription_facts.currency as billing_currency,
        -- at the day's rate, as mrr_movements converts both sides of a movement
        {{ fx_convert('subscription_facts.mrr_delta', 'subscription_facts.currency', 'workspaces.reporting_currency', 9,
                      'billing', 'reporting') }} as delta
    from movements
    inner join subscription_facts
        on subscription_facts.workspace_id = movements.workspace_id
        and subscription_facts.customer_id = movements.customer_id
        and subscription_facts.change_date = movements.change_date
    inner join workspaces
        on workspaces.workspace_id = movements.workspace_id
    {{ fx_rate_joins('movements.change_date', 'subscription_facts.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
    where subscription_facts.mrr_delta <> 0
        and {{ refresh_days('saas', 'movements.workspace_id', 'movements.change_date') }}
)
{%- endmacro %}

{#- The five movements of net_new_mrr summed from `movement_parts` per group, then net_new_mrr
    itself: contraction and churn as positive amounts, as in saas_daily_metrics. For the select
    list of a `group by` over movement_parts in saas_daily_slices and saas_daily_pair_slices. -#}
{% macro saas_movement_sums() -%}
    {%- for movement, metric, sign in [('new', 'new_mrr', ''), ('expansion', 'expansion_mrr', ''),
                                       ('contraction', 'contraction_mrr', '-'), ('churn', 'churned_mrr', '-'),
                                       ('reactivation', 'reactivation_mrr', '')] %}
        sum(case when movement_type = '{{ movement }}' then {{ sign }}delta else 0 end) as {{ metric }},
    {%- endfor %}
        sum(delta) as net_new_mrr
{%- endmacro %}

{#- The measures (slices_long_form) of the SaaS slice tables: the stocks from `stocks`, the
    movements from `movements` (by movement_type only net_new_mrr: a movement split by its own type
    is itself), and with `customers` active_customers, which only the billing currency splits. -#}
{% macro saas_slice_measures(stocks, movements, customers=false) -%}
    {%- set measures = [
        (stocks, 'mrr', 'mrr', none),
        (stocks, 'arr', '12 * mrr', none),
        (stocks, 'active_subscriptions', 'active_subscriptions', none),
        (stocks, 'new_subscriptions', 'new_subscriptions', none),
        (stocks, 'churned_subscriptions', 'churned_subscriptions', none),
    ] -%}
    {%- if customers %}
        {%- do measures.append((stocks, 'active_customers', 'active_customers', "dimension = 'billing_currency'")) -%}
    {%- endif %}
    {%- do measures.append((movements, 'net_new_mrr', 'net_new_mrr', none)) -%}
    {%- for metric in ['new_mrr', 'expansion_mrr', 'contraction_mrr', 'churned_mrr', 'reactivation_mrr'] %}
        {%- do measures.append((movements, metric, metric, "dimension <> 'movement_type'")) -%}
    {%- endfor %}
    {{ return(measures) }}
{%- endmacro %}
