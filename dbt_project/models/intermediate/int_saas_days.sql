{#- Every calendar day the SaaS models can need: from the day before the earliest Stripe period or
    version up to a day past today (or past the newest recorded version, if a load is from the future
    of this machine's clock). Per-workspace models join the days they need. -#}
with recursive bounds as (
    select
        cast(min(first_at) as date) as first_day,
        cast(greatest(max(last_at), {{ dbt.current_timestamp() }}) as date) as last_day
    from (
        select period_start_at as first_at, period_end_at as last_at from {{ ref('stg_stripe__invoice_lines') }}
        union all
        select valid_from_at as first_at, valid_from_at as last_at from {{ ref('stg_stripe__subscription_versions') }}
    ) as times
),

days as (
    select cast({{ dbt.dateadd('day', -2, 'first_day') }} as date) as date_day, last_day
    from bounds
    where first_day is not null
    union all
    select cast({{ dbt.dateadd('day', 1, 'date_day') }} as date) as date_day, last_day
    from days
    where date_day <= {{ dbt.dateadd('day', 2, 'last_day') }}
)

select date_day from days
