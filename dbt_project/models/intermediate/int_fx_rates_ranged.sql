{#- fx_rates with the end of each rate's validity, so conversions join on a date range. -#}
with rates as (
    select
        upper(currency) as currency,
        cast(usd_per_unit as decimal(18, 8)) as usd_per_unit,
        cast(valid_from as date) as valid_from
    from {{ ref('fx_rates') }}
),

ranged as (
    select
        currency,
        usd_per_unit,
        valid_from,
        coalesce(
            lead(valid_from) over (partition by currency order by valid_from),
            cast('9999-12-31' as date)
        ) as valid_to
    from rates
)

select * from ranged
