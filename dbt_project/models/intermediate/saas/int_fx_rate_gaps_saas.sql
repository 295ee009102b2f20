{#- SaaS workspaces whose billing currencies need a rate they lack, from the first subscription's
    local start day (macro fx_rate_gaps). saas_daily_metrics and its slices leave these workspaces out. -#}
{% set needs %}
    select subscriptions.workspace_id, subscriptions.currency, 'saas_daily_metrics' as model,
        min({{ local_date('subscriptions.started_at', 'workspaces.timezone') }}) as first_day
    from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    inner join workspaces on workspaces.workspace_id = subscriptions.workspace_id
    group by subscriptions.workspace_id, subscriptions.currency
{% endset %}
{{ fx_rate_gaps(needs) }}
