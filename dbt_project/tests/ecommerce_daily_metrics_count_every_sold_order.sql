-- Every non-cancelled order is counted on exactly one day of ecommerce_daily_metrics, with its
-- units: the day spine loses no day and double counts none. Returns the workspaces that disagree.
-- A workspace missing an FX rate has no days at all (has_fx_rates): its gap fails it, not this test.
with sold as (
    select
        workspace_id,
        count(*) as orders,
        sum(units) as units
    from {{ ref('orders') }}
    where not is_cancelled and {{ has_fx_rates('workspace_id', 'ecommerce') }}
    group by workspace_id
),

counted as (
    select
        workspace_id,
        sum(orders) as orders,
        sum(units) as units
    from {{ ref('ecommerce_daily_metrics') }}
    group by workspace_id
)

select
    coalesce(sold.workspace_id, counted.workspace_id) as workspace_id,
    sold.orders as sold_orders,
    counted.orders as counted_orders,
    sold.units as sold_units,
    counted.units as counted_units
from sold
full outer join counted
    on counted.workspace_id = sold.workspace_id
where coalesce(sold.orders, 0) <> coalesce(counted.orders, 0)
    or coalesce(sold.units, 0) <> coalesce(counted.units, 0)
