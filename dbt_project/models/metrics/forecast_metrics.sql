{#- The forecasts of insights.forecasts, one row per workspace and day, a column set per forecast
    metric of the registry (its `forecast_of`: net sales and orders, MRR), for questions about
    the coming days (docs/ask.md) and analysts. A view, so it reads the forecasts as the insights
    stage last wrote them (that stage runs after dbt); insights.forecasts is read by name, not as a
    source(): the forecasts asset reads the metric tables, and a lineage edge back from it would
    close a cycle. The days of the forecast's origin month up to the origin carry the actual
    figure (both bounds too), so a month's figure is its actual days plus the forecast of the rest,
    as the weekly report's outlook. Forecasts are kept only where the metric's own table has the
    origin day: a workspace missing an FX rate has no rows there (has_fx_rates), so none here, and
    on Postgres an analyst sees only the workspaces that table's policy lets them see. -#}
{{ config(materialized='view', pre_hook=["create schema if not exists insights",
                                          "{{ insights_forecasts_table() }}",
                                          "{{ insights_forecasts_access() }}"]) }}
{%- set registry = metric_registry() -%}
{%- set forecast = [] -%}
{%- for metric, entry in registry.items() if entry.forecast_of and entry.forecast_of not in forecast -%}
    {%- do forecast.append(entry.forecast_of) -%}
{%- endfor -%}
{%- set bounds = ['lower_80', 'upper_80', 'lower_95', 'upper_95'] %}

with forecasts as (
    select
        workspace_id,
        metric,
        origin,
        date,
        cast(forecast as decimal(38, 6)) as forecast,
        {%- for bound in bounds %}
        cast({{ bound }} as decimal(38, 6)) as {{ bound }}{{ "," if not loop.last }}
        {%- endfor %}
    from insights.forecasts
),

-- each workspace's forecast origin, where the metric's table has that day
origins as (
    {%- for metric in forecast %}
    select forecasts.workspace_id, forecasts.metric, max(forecasts.origin) as origin
    from forecasts
    inner join {{ ref(registry[metric].table) }} as actual
        on actual.workspace_id = forecasts.workspace_id
        and actual.date = forecasts.origin
    where forecasts.metric = '{{ metric }}'
    group by forecasts.workspace_id, forecasts.metric
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

actual_days as (
    {%- for metric in forecast %}
    select
        origins.workspace_id,
        origins.metric,
        origins.origin,
        actual.date,
        cast(actual.{{ metric }} as decimal(38, 6)) as forecast,
        {%- for bound in bounds %}
        cast(actual.{{ metric }} as decimal(38, 6)) as {{ bound }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref(registry[metric].table) }} as actual
    inner join origins
        on origins.workspace_id = actual.workspace_id
        and origins.metric = '{{ metric }}'
    where actual.date >= cast({{ dbt.date_trunc('month', 'origins.origin') }} as date)
        and actual.date <= origins.origin
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

days as (
    select forecasts.*
    from forecasts
    inner join origins
        on origins.workspace_id = forecasts.workspace_id
        and origins.metric = forecasts.metric
        and origins.origin = forecasts.origin
    union all
    select * from actual_days
),

final as (
    select
        workspace_id,
        date,
        max(origin) as origin,
        {%- for metric in forecast %}
        {%- set last_metric = loop.last %}
        max(case when metric = '{{ metric }}' then forecast end) as {{ metric }}_forecast,
        {%- for bound in bounds %}
        max(case when metric = '{{ metric }}' then {{ bound }} end) as {{ metric }}_forecast_{{ bound }}{{ "," if not (loop.last and last_metric) }}
        {%- endfor %}
        {%- endfor %}
    from days
    group by workspace_id, date
)

select * from final
