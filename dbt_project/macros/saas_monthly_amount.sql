{#- An amount per billing interval, normalized to a month (docs/metrics.md): divided by
    interval_count × months per interval, where a year = 12, a month = 1, a week = 12/52 and a day =
    12/365 months. Written as amount × (intervals per year) / (12 × interval_count): one division,
    so a weekly price is not rounded through 12/52. Null for an unknown interval. -#}
{% macro saas_monthly_amount(amount, interval, interval_count) -%}
    cast(
        ({{ amount }}) * case {{ interval }}
            when 'year' then 1
            when 'month' then 12
            when 'week' then 52
            when 'day' then 365
        end
        / (12 * coalesce({{ interval_count }}, 1))
    as decimal(38, 9))
{%- endmacro %}
