{#- The long form of every daily metric table: one row per workspace, day and metric. This is what
    the insights stage reads; the vertical packs (pipelines/packs) name the same metrics. `unit` is
    the reporting currency for money, else "count" or "ratio". -#}
{%- set tables = {
    'ecommerce_daily_metrics': {
        'gross_sales': 'currency', 'discounts': 'currency', 'refunds': 'currency', 'net_sales': 'currency',
        'orders': 'count', 'units': 'count', 'aov': 'currency',
        'new_customers': 'count', 'returning_customers': 'count',
    },
    'saas_daily_metrics': {
        'mrr': 'currency', 'arr': 'currency', 'new_mrr': 'currency', 'expansion_mrr': 'currency',
        'contraction_mrr': 'currency', 'churned_mrr': 'currency', 'reactivation_mrr': 'currency',
        'net_new_mrr': 'currency', 'active_subscriptions': 'count', 'active_customers': 'count',
        'new_subscriptions': 'count', 'churned_subscriptions': 'count', 'arpa': 'currency',
        'subscriber_churn_rate': 'ratio', 'churned_customers_30d': 'count', 'customers_at_risk_30d': 'count',
        'mrr_churn_rate': 'ratio', 'churned_mrr_30d': 'currency', 'mrr_at_risk_30d': 'currency',
        'net_revenue_retention': 'ratio', 'gross_revenue_retention': 'ratio', 'mrr_at_month_start': 'currency',
        'retained_mrr': 'currency', 'retained_gross_mrr': 'currency',
        'trial_conversion_rate': 'ratio', 'trials_ended_30d': 'count', 'trials_converted_30d': 'count',
        'ltv': 'currency',
    },
} -%}

with workspaces as (
    select workspace_id, reporting_currency from {{ ref('stg_reference__workspaces') }}
),

long_form as (
    {%- for table, metrics in tables.items() %}
    {%- set outer_loop = loop %}
    {%- for metric, unit in metrics.items() %}
    select
        workspace_id,
        date,
        '{{ metric }}' as metric,
        cast({{ metric }} as decimal(38, 6)) as value,
        '{{ unit }}' as unit_kind
    from {{ ref(table) }}
    {{ "union all" if not (outer_loop.last and loop.last) }}
    {%- endfor %}
    {%- endfor %}
),

final as (
    select
        long_form.workspace_id,
        long_form.date,
        long_form.metric,
        long_form.value,
        case when long_form.unit_kind = 'currency' then workspaces.reporting_currency else long_form.unit_kind end as unit
    from long_form
    inner join workspaces on workspaces.workspace_id = long_form.workspace_id
)

select * from final
