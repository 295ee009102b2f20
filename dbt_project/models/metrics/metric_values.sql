{#- The long form of every daily metric table: one row per workspace, day and metric, for every
    metric of the registry (pipelines/packs, through the generated macro metric_registry), read
    from its table; but the forecasts, which the insights stage writes after dbt builds this table
    (their view forecast_metrics reads them as they are). Analysts query it to compare metrics across verticals; the insights stage reads
    the wide tables. `unit` is the reporting currency for money, else "count" or "ratio". -#}
{%- set registry = {} -%}
{%- for metric, entry in metric_registry().items() if not entry.forecast_of -%}
    {%- do registry.update({metric: entry}) -%}
{%- endfor -%}

with workspaces as (
    select workspace_id, reporting_currency from {{ ref('stg_reference__workspaces') }}
),

long_form as (
    {%- for metric, entry in registry.items() %}
    select
        workspace_id,
        date,
        '{{ metric }}' as metric,
        cast({{ metric }} as decimal(38, 6)) as value,
        '{{ entry.unit }}' as unit_kind
    from {{ ref(entry.table) }}
    {{ "union all" if not loop.last }}
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
