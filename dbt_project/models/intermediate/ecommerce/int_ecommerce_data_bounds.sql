{{ config(materialized='table') }}
{#- Per ecommerce workspace with an order or a refund, its first order day and its last data day
    (macros/ecommerce_data_days.sql): the days ecommerce_daily_metrics runs through, and the last day
    of the RFM segments' weeks and day digests. Computed once a build for the three: each is a read
    of the orders mart (twice) and the refunds mart, 1.3 s on Postgres at scale 1 alone and 2-3.6 s
    inside each reader's plan (docs/performance.md, "Postgres after a small change: two `or`s run
    once per row"). -#}
{{ ecommerce_data_bounds(ref('orders'), ref('refunds'), ref('stg_reference__workspaces')) }}
