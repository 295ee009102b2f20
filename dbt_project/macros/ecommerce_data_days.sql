{#- Per ecommerce workspace, the last day of ecommerce_daily_metrics computed from the marts, not read
    from that table: its last data day, for a workspace with an order (the table's days start at the
    first) and every exchange rate (has_fx_rates: the table leaves the others out). A subquery. -#}
{% macro ecommerce_last_days() -%}
    (select workspace_id, last_day
     from {{ ref('int_ecommerce_data_bounds') }} as bounds
     where first_day is not null and {{ has_fx_rates('workspace_id', 'ecommerce') }})
{%- endmacro %}
