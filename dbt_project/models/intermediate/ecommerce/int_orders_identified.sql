{#- Each order with the person who placed it and its day in the shop's timezone.

    A person is an e-mail address, lower-cased and trimmed (docs/metrics.md, "People"), so a guest
    checkout and the account the same buyer creates later are one person. Without an order e-mail
    the account's e-mail is used, then the account itself, and an order with neither is its own
    person.

    Incremental (macros/incremental_changes.sql): a run rebuilds the orders int_ecommerce_changes
    lists (loaded, of a loaded account, or of a workspace whose timezone changed). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ delete_changed(changed_orders(), 'order_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
with orders as (
    {{ rows_of_changed_orders(ref('stg_shopify__orders')) }}
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
        orders.currency,
        workspaces.timezone
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
        currency,
        -- the timezone order_date is in: a change rebuilds the workspace (int_ecommerce_changes)
        timezone
    from identified
)

select * from final
