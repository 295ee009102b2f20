{#- The SaaS metrics of saas_daily_metrics split by the pack's dimensions (pipelines/packs): one row
    per workspace, day, metric, dimension and dimension value, in long form, in the reporting
    currency at each day's rate. The slices of a metric along one dimension add up to the metric.
    - plan: a subscription's plan is the product of its largest current item (by monthly amount);
      movements, classified per customer in mrr_movements, are split by plan through each of the
      customer's subscriptions' own change that day;
    - billing_currency: the customer's (Stripe's) currency;
    - movement_type: the five movements of net_new_mrr.
    ARPA is not sliced: its parts (mrr, active_customers) are. Zero slices are left out. -#}
with workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

subscription_days as (
    select * from {{ ref('int_subscription_mrr_daily') }}
),

customer_days as (
    select * from {{ ref('int_customer_mrr_daily') }}
),

movements as (
    select * from {{ ref('mrr_movements') }}
),

items as (
    select * from {{ ref('subscription_items') }}
),

ranked_items as (
    select
        workspace_id,
        subscription_id,
        product_name,
        row_number() over (
            partition by workspace_id, subscription_id
            order by monthly_amount desc, product_name
        ) as item_rank
    from items
),

plans as (
    select workspace_id, subscription_id, coalesce(product_name, '(none)') as plan
    from ranked_items
    where item_rank = 1
),

subscription_changes as (
    select
        subscription_days.workspace_id,
        subscription_days.customer_id,
        subscription_days.subscription_id,
        subscription_days.date_day,
        coalesce(plans.plan, '(none)') as plan,
        subscription_days.currency as billing_currency,
        subscription_days.mrr,
        subscription_days.mrr_reporting,
        coalesce(lag(subscription_days.mrr) over (
            partition by subscription_days.workspace_id, subscription_days.subscription_id
            order by subscription_days.date_day
        ), 0) as previous_mrr,
        min(case when subscription_days.mrr > 0 then subscription_days.date_day end) over (
            partition by subscription_days.workspace_id, subscription_days.subscription_id
        ) as first_paying_day,
        -- the day's rate, as int_customer_mrr_daily converts both sides of a movement
        {{ fx_rate('subscription_days.currency', 'workspaces.reporting_currency', 'billing', 'reporting') }} as fx_rate
    from subscription_days
    inner join workspaces
        on workspaces.workspace_id = subscription_days.workspace_id
    left join plans
        on plans.workspace_id = subscription_days.workspace_id
        and plans.subscription_id = subscription_days.subscription_id
    {{ fx_rate_joins('subscription_days.date_day', 'subscription_days.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
),

subscription_facts as (
    select
        workspace_id,
        customer_id,
        date_day,
        plan,
        billing_currency,
        mrr_reporting as mrr,
        case when mrr > 0 then 1 else 0 end as active_subscriptions,
        case when date_day = first_paying_day then 1 else 0 end as new_subscriptions,
        case when previous_mrr > 0 and mrr = 0 then 1 else 0 end as churned_subscriptions,
        (mrr - previous_mrr) * fx_rate as mrr_change
    from subscription_changes
),

-- each customer movement split over the customer's subscriptions' changes of that day
movement_parts as (
    select
        movements.workspace_id,
        movements.change_date as date_day,
        movements.movement_type,
        subscription_facts.plan,
        subscription_facts.billing_currency,
        subscription_facts.mrr_change as delta
    from movements
    inner join subscription_facts
        on subscription_facts.workspace_id = movements.workspace_id
        and subscription_facts.customer_id = movements.customer_id
        and subscription_facts.date_day = movements.change_date
    where subscription_facts.mrr_change <> 0
),

stock_slices as (
    {%- for dimension in ['plan', 'billing_currency'] %}
    select
        workspace_id,
        date_day as date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        sum(mrr) as mrr,
        sum(active_subscriptions) as active_subscriptions,
        sum(new_subscriptions) as new_subscriptions,
        sum(churned_subscriptions) as churned_subscriptions
    from subscription_facts
    group by workspace_id, date_day, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

customer_slices as (
    select
        workspace_id,
        date_day as date,
        'billing_currency' as dimension,
        currency as dimension_value,
        sum(case when mrr > 0 then 1 else 0 end) as active_customers
    from customer_days
    group by workspace_id, date_day, currency
),

movement_slices as (
    {%- for dimension in ['plan', 'billing_currency', 'movement_type'] %}
    select
        workspace_id,
        date_day as date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        {#- contraction and churn are the MRR lost, positive amounts (docs/metrics.md) #}
        {%- for movement, metric, sign in [('new', 'new_mrr', ''), ('expansion', 'expansion_mrr', ''),
                                           ('contraction', 'contraction_mrr', '-'), ('churn', 'churned_mrr', '-'),
                                           ('reactivation', 'reactivation_mrr', '')] %}
        sum(case when movement_type = '{{ movement }}' then {{ sign }}delta else 0 end) as {{ metric }},
        {%- endfor %}
        sum(delta) as net_new_mrr
    from movement_parts
    group by workspace_id, date_day, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

long_form as (
    {%- set measures = [
        ('stock_slices', 'mrr', 'mrr', none),
        ('stock_slices', 'arr', '12 * mrr', none),
        ('stock_slices', 'active_subscriptions', 'active_subscriptions', none),
        ('stock_slices', 'new_subscriptions', 'new_subscriptions', none),
        ('stock_slices', 'churned_subscriptions', 'churned_subscriptions', none),
        ('customer_slices', 'active_customers', 'active_customers', none),
        ('movement_slices', 'net_new_mrr', 'net_new_mrr', none),
        ('movement_slices', 'new_mrr', 'new_mrr', "dimension <> 'movement_type'"),
        ('movement_slices', 'expansion_mrr', 'expansion_mrr', "dimension <> 'movement_type'"),
        ('movement_slices', 'contraction_mrr', 'contraction_mrr', "dimension <> 'movement_type'"),
        ('movement_slices', 'churned_mrr', 'churned_mrr', "dimension <> 'movement_type'"),
        ('movement_slices', 'reactivation_mrr', 'reactivation_mrr', "dimension <> 'movement_type'"),
    ] %}
    {{ slices_long_form(measures) }}
),

final as (
    select * from long_form
    where value is null or value <> 0
)

select * from final
