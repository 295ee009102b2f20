{#- Every published rate as units of `currency` per euro, with where it came from: the ECB, or the
    operator's rates file, which wins on a day both give (docs/metrics.md, "Currency"). The euro
    itself is 1 from the ECB's first day. -#}
with ecb as (
    select day, upper(currency) as currency, cast(units_per_eur as decimal(38, 10)) as units_per_eur, 'ecb' as rate_source
    from {{ conformed_source('fx', 'ecb_rates') }}
),

operator_file as (
    select day, upper(currency) as currency, cast(units_per_eur as decimal(38, 10)) as units_per_eur,
        'ABOS_FX_RATES_FILE' as rate_source
    from {{ conformed_source('fx', 'operator_rates') }}
),

euro as (
    select cast('1999-01-04' as date) as day, 'EUR' as currency, cast(1 as decimal(38, 10)) as units_per_eur,
        'definition' as rate_source
),

final as (
    select * from operator_file
    union all
    select * from ecb
    where not exists (
        select 1 from operator_file
        where operator_file.currency = ecb.currency and operator_file.day = ecb.day
    )
    union all
    select * from euro
)

select * from final
