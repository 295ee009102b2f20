{#- Left joins to the rates in force on `day` (int_fx_rates_ranged: one row per currency and
    validity range) for the currency converted from and the one converted to. An amount converts as
    amount * from_alias.usd_per_unit / to_alias.usd_per_unit; a missing rate leaves it null, which
    the models' tests catch. -#}
{% macro fx_rate_joins(day, from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    left join {{ ref('int_fx_rates_ranged') }} as {{ from_alias }}
        on {{ from_alias }}.currency = {{ from_currency }}
        and {{ day }} >= {{ from_alias }}.valid_from and {{ day }} < {{ from_alias }}.valid_to
    left join {{ ref('int_fx_rates_ranged') }} as {{ to_alias }}
        on {{ to_alias }}.currency = {{ to_currency }}
        and {{ day }} >= {{ to_alias }}.valid_from and {{ day }} < {{ to_alias }}.valid_to
{%- endmacro %}
