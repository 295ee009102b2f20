{#- The loads dlt completed that the incremental marts have not processed yet: one row per source
    (shopify, stripe) and load, from each dataset's `_dlt_loads` (status 0: completed) less the loads
    recorded in `int_loads_pending__processed` by the on-run-end hook (macros/incremental_changes.sql).
    Before any load was recorded, every load is pending. -#}
-- after the syncs (a refresh builds each model once its parents have updated): their main tables
-- depends_on: {{ source('shopify', 'orders') }} {{ source('stripe', 'invoices') }}
{%- set processed = processed_loads_relation() if execute else none %}
with loads as (
    {%- for source_name in ['shopify', 'stripe'] %}
    {%- set relation = dlt_loads_relation(source_name) if execute else none %}
    {%- if relation is not none %}
    select distinct '{{ source_name }}' as source_name, cast(load_id as varchar) as load_id
    from {{ relation }}
    where status = 0
    {%- else %}
    select '{{ source_name }}' as source_name, cast(null as varchar) as load_id
    where 1 = 0
    {%- endif %}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

processed as (
    {%- if processed is not none %}
    select source_name, load_id from {{ processed }}
    {%- else %}
    select source_name, load_id from loads where 1 = 0
    {%- endif %}
),

final as (
    select
        loads.source_name,
        loads.load_id,
        -- as the staging models give a row's load id
        cast(loads.load_id as double precision) as load_epoch
    from loads
    where not exists (
        select 1 from processed
        where processed.source_name = loads.source_name
            and processed.load_id = loads.load_id
    )
)

select * from final
