{#- Per workspace with customers and data days, the weeks of the RFM segments
    (ecommerce_customer_segments): the window's first week (the last `rfm_weeks` weeks, from the
    week of the first sold order at the earliest), the last week and its snapshot day (the last data
    day), and refresh_from, the first week an incremental run rebuilds
    (macros/incremental_segments.sql): the week of the first day whose segment digest differs from
    the one the segment tables were built from (int_ecommerce_segment_day_digests; the workspace's
    1900-01-01 and the exchange rates' days under '*' count too), at the earliest the first week;
    9999-12-31 when nothing changed. -#}
with customers as (
    select * from {{ ref('customers') }}
),

-- each workspace's last data day, the daily metrics' last day (not read from that table: the segments
-- then need not wait for the daily tables in a build)
last_days as (
    select * from {{ ecommerce_last_days() }} as last_days
),

windows as (
    select
        last_days.workspace_id,
        last_days.last_day,
        cast({{ dbt.date_trunc('week', 'last_days.last_day') }} as date) as last_week,
        greatest(
            cast({{ dbt.dateadd('week', -1 * (var('rfm_weeks', 26) - 1), dbt.date_trunc('week', 'last_days.last_day')) }} as date),
            cast({{ dbt.date_trunc('week', 'min(customers.first_order_date)') }} as date)
        ) as first_week
    from last_days
    inner join customers on customers.workspace_id = last_days.workspace_id
    group by last_days.workspace_id, last_days.last_day
),

{{ differing_days('ecommerce_segment') }},

changed as (
    select workspace_id, min(date_day) as first_day
    from differing
    group by workspace_id
),

final as (
    select
        windows.workspace_id,
        windows.first_week,
        windows.last_week,
        windows.last_day,
        greatest(windows.first_week, cast({{ dbt.date_trunc('week', 'least('
            ~ "coalesce(changed.first_day, cast('9999-12-31' as date)), "
            ~ "coalesce(rates.first_day, cast('9999-12-31' as date)))") }} as date)) as refresh_from
    from windows
    left join changed on changed.workspace_id = windows.workspace_id
    left join changed as rates on rates.workspace_id = '*'
)

select * from final
