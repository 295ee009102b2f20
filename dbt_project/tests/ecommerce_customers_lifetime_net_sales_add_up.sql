-- The customers' lifetime net sales add up to the shop's: Σ discounted sales of non-cancelled
-- orders − Σ refunded sales (shop currency), so no order or refund is lost or counted twice by
-- the guest/account unification. Returns the workspaces that disagree.
with customers as (
    select workspace_id, sum(lifetime_net_sales) as net_sales
    from {{ ref('customers') }}
    group by workspace_id
),

sold as (
    select workspace_id, sum(discounted_sales) as amount
    from {{ ref('orders') }}
    where not is_cancelled
    group by workspace_id
),

refunded as (
    select workspace_id, sum(refunded_sales) as amount
    from {{ ref('refunds') }}
    group by workspace_id
)

select
    customers.workspace_id,
    customers.net_sales,
    coalesce(sold.amount, 0) - coalesce(refunded.amount, 0) as shop_net_sales
from customers
left join sold
    on sold.workspace_id = customers.workspace_id
left join refunded
    on refunded.workspace_id = customers.workspace_id
where customers.net_sales <> coalesce(sold.amount, 0) - coalesce(refunded.amount, 0)
