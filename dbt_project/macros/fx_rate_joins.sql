{#- Currency conversion: the one place that knows how FX rates are stored (docs/metrics.md, "Currency").

    Rates are units of a currency per euro (int_fx_rates_ranged: the ECB's reference rates and the
    operator's rates file, each holding until the currency's next one). A model converts with
    `fx_rate_joins`, which left joins the rates in force on `day` for the currency converted from
    and the one converted to, and then `fx_rate` (or `ecommerce_convert`), the multiplier from one
    to the other: a cross rate through the euro. Converting a currency into itself needs no rate; a
    missing rate otherwise leaves the multiplier null, and int_fx_rate_gaps fails that workspace.
    Callers never read the joined rate columns. -#}
{% macro fx_rate_joins(day, from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    left join {{ ref('int_fx_rates_ranged') }} as {{ from_alias }}
        on {{ from_alias }}.currency = {{ from_currency }}
        and {{ day }} >= {{ from_alias }}.valid_from and {{ day }} < {{ from_alias }}.valid_to
    left join {{ ref('int_fx_rates_ranged') }} as {{ to_alias }}
        on {{ to_alias }}.currency = {{ to_currency }}
        and {{ day }} >= {{ to_alias }}.valid_from and {{ day }} < {{ to_alias }}.valid_to
{%- endmacro %}

{#- The multiplier from `from_currency` to `to_currency` on the day `fx_rate_joins` joined with the
    same aliases: 1 for the same currency, null when a rate is missing. Rounded to 12 decimals, so
    both databases (DuckDB divides in double precision, Postgres exactly) give the same digits. -#}
{% macro fx_rate(from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    case
        when {{ from_currency }} = {{ to_currency }} then cast(1 as decimal(38, 12))
        else cast({{ to_alias }}.units_per_eur / {{ from_alias }}.units_per_eur as decimal(38, 12))
    end
{%- endmacro %}

{#- True for a workspace with every FX rate its `vertical`'s conversions need (int_fx_rate_gaps_<vertical>). The metric
    tables keep only these workspaces, so a missing rate leaves its workspace's figures absent,
    never 0, and every other workspace's figures in place. -#}
{% macro has_fx_rates(workspace_id, vertical) -%}
    {{ workspace_id }} not in (select workspace_id from {{ ref('int_fx_rate_gaps_' ~ vertical) }})
{%- endmacro %}

{#- The conversions a workspace needs and has no rate for, given `needs`: a query of (workspace_id,
    currency, model, first_day), the first local day the workspace converts amounts in `currency`
    for `model`. A rate applies from its day until the currency's next one, so a conversion needed
    from day D on lacks a rate exactly when either currency has none on or before D. One row per
    workspace and currency, with the reason the operator reads (currency, day, setting). -#}
{% macro fx_rate_gaps(needs) -%}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

rates as (
    select currency, min(valid_from) as first_day from {{ ref('int_fx_rates_ranged') }} group by currency
),

needs as (
    {{ needs }}
),

gaps as (
    select
        needs.workspace_id,
        needs.model,
        needs.currency,
        workspaces.reporting_currency,
        needs.first_day,
        case when from_rates.first_day is null or from_rates.first_day > needs.first_day
            then needs.currency else workspaces.reporting_currency end as missing_currency
    from needs
    inner join workspaces on workspaces.workspace_id = needs.workspace_id
    left join rates as from_rates on from_rates.currency = needs.currency
    left join rates as to_rates on to_rates.currency = workspaces.reporting_currency
    where needs.currency <> workspaces.reporting_currency
        and (from_rates.first_day is null or from_rates.first_day > needs.first_day
            or to_rates.first_day is null or to_rates.first_day > needs.first_day)
),

final as (
    select
        workspace_id,
        model,
        currency,
        reporting_currency,
        first_day,
        missing_currency,
        'no FX rate for ' || missing_currency || ' on ' || cast(first_day as varchar)
            || ' to convert ' || currency || ' into the reporting currency ' || reporting_currency
            || ': add ' || missing_currency || ' rates from that day on to the file named by ABOS_FX_RATES_FILE'
            || ' (docs/configuration.md), or report in ' || currency as reason
    from gaps
)

select * from final
{%- endmacro %}
