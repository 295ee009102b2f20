{#- One row per person: guest checkouts and account orders with the same e-mail are one customer
    (int_orders_identified). Amounts are in shop currency.

    Incremental (macros/incremental_changes.sql): a run rebuilds the people it changed, and those
    a changed account's e-mail matched or matches. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_changed(changed_people(), 'person_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
-- depends_on: {{ ref('int_orders_identified') }}
with people as (
    select unified.* from {{ ref('int_customers_unified') }} as unified
    {%- if is_incremental() %}
    inner join {{ changed_people() }} as changed
        on changed.workspace_id = unified.workspace_id
        and changed.person_id = unified.person_id
    {%- endif %}
),

accounts as (
    select * from {{ ref('stg_shopify__customers') }}
),

orders as (
    select orders.* from {{ ref('orders') }} as orders
    {%- if is_incremental() %}
    inner join people
        on people.workspace_id = orders.workspace_id
        and people.person_id = orders.person_id
    {%- endif %}
),

refunds as (
    select refunds.* from {{ ref('refunds') }} as refunds
    {%- if is_incremental() %}
    inner join people
        on people.workspace_id = refunds.workspace_id
        and people.person_id = refunds.person_id
    {%- endif %}
),

sales as (
    select
        workspace_id,
        person_id,
        max(currency) as currency,
        cast(sum(case when not is_cancelled then discounted_sales else 0 end) as decimal(38, 9)) as sold
    from orders
    group by workspace_id, person_id
),

refunded as (
    select
        workspace_id,
        person_id,
        cast(sum(refunded_sales) as decimal(38, 9)) as refunded_sales
    from refunds
    group by workspace_id, person_id
),

final as (
    select
        people.workspace_id,
        people.person_id,
        people.email,
        -- a guest who signed up later without ordering again is matched to the account by e-mail
        coalesce(people.customer_id, accounts.customer_id) as customer_id,
        coalesce(people.customer_id, accounts.customer_id) is null as is_guest,
        people.first_order_at,
        people.first_order_date,
        people.last_order_at,
        people.order_count,
        people.cancelled_order_count,
        sales.currency,
        -- the person's share of net sales: sold minus every refund of their orders (docs/metrics.md)
        cast(sales.sold - coalesce(refunded.refunded_sales, 0) as decimal(38, 9)) as lifetime_net_sales
    from people
    inner join sales
        on sales.workspace_id = people.workspace_id
        and sales.person_id = people.person_id
    left join refunded
        on refunded.workspace_id = people.workspace_id
        and refunded.person_id = people.person_id
    left join accounts
        on people.customer_id is null
        and accounts.workspace_id = people.workspace_id
        and lower(accounts.email) = people.email
)

select * from final
