{#- Each published rate with the end of its validity, so conversions join on a date range: a rate
    holds from its day until the currency's next one, which carries the last rate over weekends and
    TARGET holidays (docs/metrics.md, "Currency"). -#}
with rates as (
    select * from {{ ref('stg_fx__rates') }}
),

ranged as (
    select
        currency,
        units_per_eur,
        rate_source,
        day as valid_from,
        coalesce(
            lead(day) over (partition by currency order by day),
            cast('9999-12-31' as date)
        ) as valid_to
    from rates
)

select * from ranged
