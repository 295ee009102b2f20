{#- An ecommerce workspace's data days, one row per workspace: its first order day and its last data
    day (the latest day with an order placed or changed, or a refund), the days ecommerce_daily_metrics
    runs through. `orders`, `refunds` and `workspaces` are relations or CTE names with the orders and
    refunds marts' and the workspaces' columns. Built once a build as int_ecommerce_data_bounds, which
    the daily metrics and the segments' weeks and day digests read: the RFM segments need not wait for
    the daily metrics to know their last week, so in a build they start beside the daily tables
    instead of after them (docs/performance.md, "The full `dbt build` on DuckDB: the segments beside
    the daily tables"). -#}
{% macro ecommerce_data_bounds(orders, refunds, workspaces) -%}
    select workspace_id, min(first_day) as first_day, max(last_day) as last_day
    from (
        select data_orders.workspace_id, data_orders.order_date as first_day, data_orders.order_date as last_day
        from {{ orders }} as data_orders
        union all
        select data_orders.workspace_id, null as first_day,
            {{ local_date('data_orders.updated_at', 'data_workspaces.timezone') }} as last_day
        from {{ orders }} as data_orders
        inner join {{ workspaces }} as data_workspaces
            on data_workspaces.workspace_id = data_orders.workspace_id
        union all
        select data_refunds.workspace_id, null as first_day, data_refunds.refund_date as last_day
        from {{ refunds }} as data_refunds
    ) as data_days
    group by workspace_id
{%- endmacro %}

{#- Per ecommerce workspace, the last day of ecommerce_daily_metrics computed from the marts, not read
    from that table: its last data day, for a workspace with an order (the table's days start at the
    first) and every exchange rate (has_fx_rates: the table leaves the others out). A subquery. -#}
{% macro ecommerce_last_days() -%}
    (select workspace_id, last_day
     from {{ ref('int_ecommerce_data_bounds') }} as bounds
     where first_day is not null and {{ has_fx_rates('workspace_id', 'ecommerce') }})
{%- endmacro %}
