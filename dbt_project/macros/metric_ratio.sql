{#- A ratio metric of the registry (metric_registry, generated from pipelines/packs), computed from
    its numerator and denominator columns where the model has them: null when the denominator is
    not positive. Ratios are declared once, in the registry; the models only choose the rounding.
    `ecommerce_divide_half_up` rounds money the same on DuckDB and Postgres (AOV). -#}
{% macro metric_ratio(name, scale=6, half_up=false) -%}
    {%- set entry = metric_registry()[name] -%}
    {%- if half_up -%}
        {{ ecommerce_divide_half_up(entry.numerator, entry.denominator, scale) }}
    {%- else -%}
        case when ({{ entry.denominator }}) > 0 then 1.0 * ({{ entry.numerator }}) / ({{ entry.denominator }}) end
    {%- endif -%}
{%- endmacro %}
