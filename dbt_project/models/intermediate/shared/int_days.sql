{#- The one calendar every daily model joins (dbt's own date_spine): every day from 1970-01-01 to
    2099-12-31, whatever the data. Fixed bounds, so neither vertical's models depend on the other's
    sources, a load dated in this machine's future still has its days, and an incremental run never
    finds the spine moved. A model takes the days it needs with a range join (its first day to its
    as-of day). Its rows come from this SQL alone, so it is built only when the SQL changes
    (macros/deploy_when_changed.sql), not on every refresh. -#}
{{ config(deploy_when_changed=true) }}
with days as (
    {{ dbt.date_spine('day', "cast('1970-01-01' as date)", "cast('2100-01-01' as date)") }}
),

final as (
    select cast(date_day as date) as date_day
    from days
)

select * from final
