{#- Unix seconds (Stripe's timestamps) to a timestamp with time zone, in UTC. -#}
{% macro epoch_to_timestamp(seconds) -%}
    to_timestamp(cast({{ seconds }} as double precision))
{%- endmacro %}
