{#- Currency conversion: the one place that knows how FX rates are stored (docs/metrics.md, "Currency").

    A model converts with `fx_rate_joins`, which left joins the rates in force on `day` for the
    currency converted from and the one converted to, and then `fx_rate` (or `ecommerce_convert`),
    the multiplier from one to the other. Converting a currency into itself needs no rate; a missing
    rate otherwise leaves the multiplier null. Callers never read the joined rate columns. -#}
{% macro fx_rate_joins(day, from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    left join {{ ref('int_fx_rates_ranged') }} as {{ from_alias }}
        on {{ from_alias }}.currency = {{ from_currency }}
        and {{ day }} >= {{ from_alias }}.valid_from and {{ day }} < {{ from_alias }}.valid_to
    left join {{ ref('int_fx_rates_ranged') }} as {{ to_alias }}
        on {{ to_alias }}.currency = {{ to_currency }}
        and {{ day }} >= {{ to_alias }}.valid_from and {{ day }} < {{ to_alias }}.valid_to
{%- endmacro %}

{#- The multiplier from `from_currency` to `to_currency` on the day `fx_rate_joins` joined with the
    same aliases: 1 for the same currency, null when a rate is missing. -#}
{% macro fx_rate(from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    case
        when {{ from_currency }} = {{ to_currency }} then cast(1 as decimal(18, 8))
        else {{ from_alias }}.usd_per_unit / {{ to_alias }}.usd_per_unit
    end
{%- endmacro %}

{#- True for a workspace with every FX rate its conversions need (int_fx_rate_gaps). The metric
    tables keep only these workspaces, so a missing rate leaves its workspace's figures absent,
    never 0, and every other workspace's figures in place. -#}
{% macro has_fx_rates(workspace_id) -%}
    {{ workspace_id }} not in (select workspace_id from {{ ref('int_fx_rate_gaps') }})
{%- endmacro %}
