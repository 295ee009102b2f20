{#- The strings of a JSON list of strings (as dlt stores a list column, e.g. a subscription's
    discount ids) as rows of a table function, for `cross join lateral ... as alias(column)`: one
    row per element, none for an empty list or null. JSON access differs between the warehouses,
    so this dispatches. -#}
{% macro json_array_strings(json_list) -%}
    {{ return(adapter.dispatch('json_array_strings')(json_list)) }}
{%- endmacro %}

{% macro default__json_array_strings(json_list) -%}
    jsonb_array_elements_text(cast({{ json_list }} as jsonb))
{%- endmacro %}

{% macro duckdb__json_array_strings(json_list) -%}
    unnest(json_extract_string({{ json_list }}, '$[*]'))
{%- endmacro %}
