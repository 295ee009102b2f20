{#- Currency conversion: the one place that knows how FX rates are stored (docs/metrics.md, "Currency").

    Rates are units of a currency per euro (int_fx_rates_ranged: the ECB's reference rates and the
    operator's rates file, each holding until the currency's next one; int_fx_rates_daily: the same
    rates, one row per currency and day). A model converts with
    `fx_rate_joins`, which left joins the rates in force on `day` for the currency converted from
    and the one converted to, and then `fx_convert`, the amount crossed through the euro into the
    other currency. Converting a currency into itself needs no rate; a missing rate otherwise leaves
    the amount null, and int_fx_rate_gaps fails that workspace. Callers never read the joined rate
    columns. -#}
{% macro fx_rate_joins(day, from_currency, to_currency, from_alias='from_rate', to_alias='to_rate') -%}
    {#- int_fx_rates_daily holds every day up to the last published one; a later day takes that day's
        rate (the last rate holds on), so the join is on equality: one lookup per row, where a range
        join over int_fx_rates_ranged costs every rate of the currency (docs/performance.md). -#}
    {%- set rates = ref('int_fx_rates_daily') -%}
    {#- a scalar subquery, which Postgres computes once (a cross-joined one was recomputed per row) -#}
    {%- set last_day = '(select max(date_day) from ' ~ rates ~ ')' -%}
    {%- set on_day -%}
        case when cast({{ day }} as date) > {{ last_day }} then {{ last_day }} else cast({{ day }} as date) end
    {%- endset %}
    left join {{ rates }} as {{ from_alias }}
        on {{ from_alias }}.currency = {{ from_currency }}
        and {{ from_alias }}.date_day = {{ on_day }}
    left join {{ rates }} as {{ to_alias }}
        on {{ to_alias }}.currency = {{ to_currency }}
        and {{ to_alias }}.date_day = {{ on_day }}
{%- endmacro %}

{#- `amount`, in `from_currency`, in `to_currency` at the rates `fx_rate_joins` joined with the same
    aliases: amount × rate(to) / rate(from), multiplied first and divided last, exactly, then rounded
    half away from zero once to `scale` decimals, as decimal(38, `scale`) (docs/metrics.md,
    "Currency"). The same currency needs no rate (the amount, cast), nor does 0 (0 in any currency); a
    missing rate otherwise gives null: unknown, never 0 (docs/metrics.md, "A missing rate").

    No rounded cross rate in between: a rate of 0.000275942 kept to 12 decimals has 9 significant
    digits, too few for ₩999,999,990,000. The quotient is taken in whole numbers (whole_numbers.sql),
    so both databases give the same digits: n = |amount| in units of 10^-9 (amounts have at most 9
    decimals) times rate(to) in units of 10^-10 (stg_fx__rates' scale), over d = rate(from) in the
    same units; n / d is the result in units of 10^-9. Up to 9 decimals, (2n + d·10^k) div 2d·10^k
    with k = 9 − scale; beyond 9, long division: (n div d) · 10^k plus the remainder's
    (2·(n mod d)·10^k + d) div 2d, with k = scale − 9, so more decimals never overflow. 2n must stay
    below 1.7 × 10^38, i.e. |amount| × rate(to) below 8.5 × 10^18; DuckDB stops with an overflow
    error beyond that, so the ingest contract quarantines every amount of 10^13 or more
    (pipelines/ingest/quarantine.py, AMOUNT_LIMIT). -#}
{% macro fx_convert(amount, from_currency, to_currency, scale, from_alias='from_rate', to_alias='to_rate') -%}
    {%- set n = 'abs(' ~ whole_number('cast((' ~ amount ~ ') as decimal(38, 9)) * 1000000000') ~ ' * '
        ~ whole_number(to_alias ~ '.units_per_eur * 10000000000') ~ ')' -%}
    {%- set d = whole_number(from_alias ~ '.units_per_eur * 10000000000') -%}
    {%- if scale <= 9 -%}
        {%- set units = whole_div('2 * ' ~ n ~ ' + ' ~ d ~ ' * ' ~ 10 ** (9 - scale), '2 * ' ~ d ~ ' * ' ~ 10 ** (9 - scale)) -%}
    {%- else -%}
        {%- set whole = whole_div(n, d) -%}
        {%- set units = '(' ~ whole ~ ' * ' ~ 10 ** (scale - 9) ~ ' + '
            ~ whole_div('2 * (' ~ n ~ ' - ' ~ whole ~ ' * ' ~ d ~ ') * ' ~ 10 ** (scale - 9) ~ ' + ' ~ d, '2 * ' ~ d) ~ ')' -%}
    {%- endif %}
    case
        when {{ from_currency }} = {{ to_currency }} then cast(({{ amount }}) as decimal(38, {{ scale }}))
        when ({{ amount }}) = 0 then cast(0 as decimal(38, {{ scale }}))
        else cast(
            case when ({{ amount }}) < 0 then -1 else 1 end * {{ units }}
            * cast({{ '1' if scale == 0 else '0.' ~ '0' * (scale - 1) ~ '1' }} as decimal(38, {{ scale }}))
        as decimal(38, {{ scale }}))
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

{#- Σ `amount` over the group (or the window `over`, e.g. 'over (partition by …)'), null when any term
    is: an amount converted without a rate is unknown, and a sum with an unknown term is unknown, never
    the others' total as if it were 0 (docs/metrics.md, "A missing rate"). For tables that keep a
    workspace missing a rate (the marts and the cohorts); the metric tables leave it out (has_fx_rates). -#}
{% macro sum_known(amount, over='') -%}
    case when count(*) {{ over }} = count({{ amount }}) {{ over }} then sum({{ amount }}) {{ over }} end
{%- endmacro %}
