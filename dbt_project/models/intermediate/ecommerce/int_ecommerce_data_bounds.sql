{{ config(materialized='table') }}
{#- Per ecommerce workspace with an order or a refund, its first order day and its last data day
    (the latest day with an order placed or changed, or a refund): the days ecommerce_daily_metrics
    runs through, and the last day of the RFM segments' weeks and day digests
    (macros/ecommerce_data_days.sql, ecommerce_last_days). Computed once a build for the three: each
    is a read of the orders mart (twice) and the refunds mart, 1.3 s on Postgres at scale 1 alone
    and 2-3.6 s inside each reader's plan (docs/performance.md, "Postgres after a small change: two
    `or`s run once per row"). As a node of its own, the RFM segments need not wait for the daily
    metrics to know their last week: in a build they start beside the daily tables instead of after
    them (docs/performance.md, "The full `dbt build` on DuckDB: the segments beside the daily
    tables"). -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

-- read twice: on Postgres not materialized (a CTE read twice is, with every column of every order)
orders as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, order_date, updated_at from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

data_days as (
    select workspace_id, order_date as first_day, order_date as last_day
    from orders
    union all
    select orders.workspace_id, null as first_day, {{ local_date('orders.updated_at', 'workspaces.timezone') }} as last_day
    from orders
    inner join workspaces on workspaces.workspace_id = orders.workspace_id
    union all
    select workspace_id, null as first_day, refund_date as last_day
    from refunds
)

select workspace_id, min(first_day) as first_day, max(last_day) as last_day
from data_days
group by workspace_id
