{#- Each order with the person who placed it and its day in the shop's timezone.

    A person is an e-mail address, lower-cased and trimmed (docs/metrics.md, "People"), so a guest
    checkout and the account the same buyer creates later are one person. Without an order e-mail
    the account's e-mail is used, then the account itself, and an order with neither is its own
    person. -#}
with orders as (
    select * from {{ ref('stg_shopify__orders') }}
),

customers as (
    select * from {{ ref('stg_shopify__customers') }}
),

workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

identified as (
    select
        orders.workspace_id,
        orders.order_id,
        orders.customer_id,
        lower(coalesce(orders.email, customers.email)) as email,
        coalesce(
            'email:' || lower(coalesce(orders.email, customers.email)),
            'customer:' || orders.customer_id,
            'order:' || orders.order_id
        ) as person_key,
        orders.created_at,
        {{ local_date('orders.created_at', 'workspaces.timezone') }} as order_date,
        orders.is_cancelled,
        orders.currency
    from orders
    left join customers
        on customers.workspace_id = orders.workspace_id
        and customers.customer_id = orders.customer_id
    left join workspaces
        on workspaces.workspace_id = orders.workspace_id
),

final as (
    select
        workspace_id,
        order_id,
        {{ dbt.hash('person_key') }} as person_id,
        customer_id,
        email,
        created_at,
        order_date,
        is_cancelled,
        currency
    from identified
)

select * from final
