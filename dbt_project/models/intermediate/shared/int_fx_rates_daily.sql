{#- The rate in force on each day, per currency: one row per currency and day from its first rate
    to the last day any rate was published, so a conversion joins its rate on equality
    (fx_rate_joins: day, or that last day for a later day, whose rate holds on). The same rates as
    int_fx_rates_ranged's valid_from <= day < valid_to; a range join costs every rate of the
    currency per converted row (on Postgres, minutes for the segments of a big shop; docs/performance.md,
    "Postgres against DuckDB"). -#}
with ranged as (
    select * from {{ ref('int_fx_rates_ranged') }}
),

currencies as (
    select currency, min(valid_from) as first_day
    from ranged
    group by currency
),

published as (
    select min(valid_from) as first_day, max(valid_from) as last_day
    from ranged
),

grid as (
    select currencies.currency, days.date_day
    from {{ ref('int_days') }} as days
    inner join published
        on days.date_day >= published.first_day
        and days.date_day <= published.last_day
    inner join currencies
        on days.date_day >= currencies.first_day
),

-- each day marked with the number of rates published up to it: a rate and the days it holds share one
marked as (
    select
        grid.currency,
        grid.date_day,
        ranged.units_per_eur,
        count(ranged.valid_from) over (partition by grid.currency order by grid.date_day) as rate_number
    from grid
    left join ranged
        on ranged.currency = grid.currency
        and ranged.valid_from = grid.date_day
),

final as (
    select
        currency,
        date_day,
        max(units_per_eur) over (partition by currency, rate_number) as units_per_eur
    from marked
)

select * from final
