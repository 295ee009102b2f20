{#- The calendar day of a timestamp-with-time-zone in an IANA timezone (a column or a literal).
    Same syntax on DuckDB (ICU) and Postgres. -#}
{% macro local_date(timestamp_tz, timezone) -%}
    cast(({{ timestamp_tz }}) at time zone {{ timezone }} as date)
{%- endmacro %}
