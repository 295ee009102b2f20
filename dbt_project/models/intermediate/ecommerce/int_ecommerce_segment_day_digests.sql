{#- A fingerprint per workspace and local day of what the RFM segments are made of (macro
    row_digest; macros/incremental_segments.sql): each sold order and each refund of a person on its
    day (person, currency, amount in the shop's and in the reporting currency: a changed exchange
    rate or reporting currency changes it too), the workspace's last data day on that day (the
    current week's snapshot), and the window's length on 1900-01-01; the end shared with the daily
    tables' digests (macro day_digests) adds the workspace's timezone and reporting currency on
    1900-01-01 (a change there rebuilds in full) and the exchange rates under the workspace '*'.
    int_ecommerce_segment_weeks compares it with the digests the segment tables were built from. -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

orders as (
    select * from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

{{ segment_money() }},

input_rows as (
    select workspace_id, date as date_day,
        {{ row_digest(['person_id', 'currency', 'orders', 'net_sales', 'reporting_net_sales']) }} as row_hash
    from money

    union all

    select workspace_id, last_day as date_day, {{ row_digest(["'last day'"]) }} as row_hash
    from {{ ecommerce_last_days() }} as last_days

    union all

    select workspace_id, cast('1900-01-01' as date) as date_day,
        {{ row_digest(["'rfm_weeks " ~ var('rfm_weeks', 26) ~ "'"]) }} as row_hash
    from workspaces
),

{{ day_digests('workspaces', 'input_rows') }}
