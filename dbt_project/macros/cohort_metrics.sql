{#- The body of a `<vertical>_cohort_metrics` model (docs/metrics.md, "Cohort metrics"): one row per
    workspace and cohort month of `cohorts` (a `<vertical>_cohorts` model), dated on the month's
    first day, with the cohort's size as `size`, and for each month N of COHORT_MONTHS
    (pipelines/packs/pack.py) each ratio of `ratios`, then its numerator and denominator.

    `ratios`: (ratio, numerator, denominator), a part being (column, source column of `cohorts`,
    type, from_start). A part counts its source in month N once month N is complete (before the
    workspace's last month of `cohorts`), else 0; with from_start, the source in month 0, counted
    once month N is complete. The ratio is metric_ratio of the registry. `months_since` names the
    column of `cohorts` counting months since the cohort's first. A workspace missing an exchange
    rate for `vertical` has no rows (has_fx_rates): int_fx_rate_gaps fails it. -#}
{% macro cohort_metrics(cohorts, months_since, size, ratios, vertical) -%}
{%- set months = [1, 3, 6, 12] -%}
with cohorts as (
    select * from {{ ref(cohorts) }}
),

last_months as (
    select workspace_id, max(activity_month) as last_month
    from cohorts
    group by workspace_id
),

parts as (
    select
        cohorts.workspace_id,
        cohorts.cohort_month as date,
        max(cohorts.cohort_customers) as {{ size }},
        {%- for month in months %}
        {%- set outer_loop = loop %}
        {%- set reached = "cohorts." ~ months_since ~ " = " ~ month ~ " and cohorts.activity_month < last_months.last_month" %}
        {%- for ratio, numerator, denominator in ratios %}
        {%- set ratios_loop = loop %}
        {%- for column, source, type, from_start in [numerator, denominator] %}
        {%- if from_start %}
        -- month 0's {{ source }}, counted once month N is reached
        max(case when cohorts.{{ months_since }} = 0 and cohorts.cohort_month < {{ dbt.dateadd('month', -month, 'last_months.last_month') }}
            then cohorts.{{ source }} else 0 end) as {{ column }}_m{{ month }}
        {%- else %}
        sum(case when {{ reached }} then cohorts.{{ source }} else 0 end) as {{ column }}_m{{ month }}
        {%- endif %}{{ "," if not (outer_loop.last and ratios_loop.last and loop.last) }}
        {%- endfor %}
        {%- endfor %}
        {%- endfor %}
    from cohorts
    inner join last_months on last_months.workspace_id = cohorts.workspace_id
    group by cohorts.workspace_id, cohorts.cohort_month
),

final as (
    select
        workspace_id,
        date,
        cast({{ size }} as bigint) as {{ size }},
        {%- for month in months %}
        {%- set outer_loop = loop %}
        {%- for ratio, numerator, denominator in ratios %}
        cast({{ metric_ratio(ratio ~ '_m' ~ month) }} as decimal(18, 6)) as {{ ratio }}_m{{ month }},
        {%- set ratios_loop = loop %}
        {%- for column, source, type, from_start in [numerator, denominator] %}
        cast({{ column }}_m{{ month }} as {{ type }}) as {{ column }}_m{{ month }}{{ "," if not (outer_loop.last and ratios_loop.last and loop.last) }}
        {%- endfor %}
        {%- endfor %}
        {%- endfor %}
    from parts
    -- a workspace missing an exchange rate has no figures (int_fx_rate_gaps fails it), as in the daily metrics
    where {{ has_fx_rates('workspace_id', vertical) }}
)

select * from final
{%- endmacro %}
