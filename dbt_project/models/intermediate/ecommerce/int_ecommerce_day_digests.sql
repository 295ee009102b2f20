{#- A fingerprint per workspace and local day of every input row the ecommerce daily tables read
    for that day (macro row_digest): orders and their lines on the order's day (with the person's
    first order day, which makes them new or returning), refunds and their lines on the refund's
    day (with the refunded order's country and customer type, which slice them); the workspace's
    timezone and reporting currency on 1900-01-01 (a change rebuilds it in full); the exchange
    rates on their first day, under the workspace '*'. int_ecommerce_refresh_windows compares it
    with the digests the daily tables were built from (macros/incremental_days.sql). The orders'
    parts are kept by order (int_ecommerce_order_digests, which an incremental run rehashes for the
    orders it changed only); this sums them per day. -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

-- each order's part of its days (int_ecommerce_order_digests), summed per day
input_rows as (
    select workspace_id, date_day, cast(sum(digest) as decimal(38, 0)) as row_hash
    from {{ ref('int_ecommerce_order_digests') }}
    group by workspace_id, date_day
),

{{ day_digests('workspaces', 'input_rows') }}
