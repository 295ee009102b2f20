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
