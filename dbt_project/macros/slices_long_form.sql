{#- The rows of a `<vertical>_daily_slices` model: one select per (relation, metric, expression,
    condition) in `measures`, unioned, each giving workspace_id, date, metric, dimension,
    dimension_value and the expression's value. `condition` (or none) filters that select. With
    `pairs`, the rows of a `<vertical>_daily_pair_slices` model: second_dimension and
    second_dimension_value follow dimension_value. -#}
{% macro slices_long_form(measures, pairs=false) -%}
    {%- for relation, metric, expression, condition in measures %}
    select
        workspace_id,
        date,
        '{{ metric }}' as metric,
        dimension,
        dimension_value,
        {%- if pairs %}
        second_dimension,
        second_dimension_value,
        {%- endif %}
        cast({{ expression }} as decimal(38, 6)) as value
    from {{ relation }}
    {%- if condition %}
    where {{ condition }}
    {%- endif %}
    {{ "union all" if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The rows a slice table keeps of `relation` (its slices_long_form): every non-zero value, and a
    null (a missing FX rate) for the tests to catch, of the workspaces with every FX rate their
    `vertical` needs (a missing rate leaves the workspace out: docs/metrics.md, Currency). -#}
{% macro kept_slices(relation, vertical) -%}
    select * from {{ relation }}
    where (value is null or value <> 0)
        and {{ has_fx_rates('workspace_id', vertical) }}
{%- endmacro %}
