{#- Ecommerce workspaces whose shop money needs a rate they lack, from the first order's local day
    (macro fx_rate_gaps). ecommerce_daily_metrics and its slices leave these workspaces out. -#}
{% set needs %}
    select orders.workspace_id, orders.currency, 'ecommerce_daily_metrics' as model,
        min({{ local_date('orders.created_at', 'workspaces.timezone') }}) as first_day
    from {{ ref('stg_shopify__orders') }} as orders
    inner join workspaces on workspaces.workspace_id = orders.workspace_id
    group by orders.workspace_id, orders.currency
{% endset %}
{{ fx_rate_gaps(needs) }}
