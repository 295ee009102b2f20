{{ config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false
) }}
{#- What the pending Shopify loads changed (macros/incremental_changes.sql): the orders and people
    the incremental ecommerce marts rebuild. One row per
    - order loaded (or with a refund loaded) by a pending load, of an account loaded by one (its
      e-mail may have changed the order's person), or of a workspace whose timezone changed (every
      order's day moves), with the order's person before this run (null for a new order): the
      person it leaves must be rebuilt too;
    - account loaded by a pending load, without an order: the people its e-mail matches now, and
      the person the customers mart matched to it before (a guest is matched to an account by
      e-mail);
    - order or account the marts hold that staging no longer has: deleted in the shop (a
      `*/delete` webhook's sync removes its raw rows, ingest/shopify `forget`), so no load brings
      it. Its order rows carry the person it leaves; a vanished account's orders are rebuilt too
      (their person may have been the account's e-mail).
    Rows accumulate (append) until a run has rebuilt every mart from them: the on-run-end hook then
    empties the table. So a run that fails halfway leaves them for the next, which still knows the
    people orders left. The models before this run are read without a ref (they are built after it). -#}
{%- set identified = model_relation('int_orders_identified') if execute else none %}
{%- set customers = model_relation('customers') if execute else none %}
{%- set dated = identified is not none
    and 'timezone' in adapter.get_columns_in_relation(identified) | map(attribute='name') | map('lower') | list %}
{# The staged tables read more than once name their columns, and on Postgres are not materialized:
    materialized, Postgres wrote every column of every order to disk, and planned the anti-joins
    with them (no statistics) as merges of every row sorted (docs/performance.md, "Postgres after
    a small change: the CTEs read twice"). -#}
with orders as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, order_id, customer_id, load_epoch
    from {{ ref('stg_shopify__orders') }}
),

accounts as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, customer_id, email, load_epoch
    from {{ ref('stg_shopify__customers') }}
),

workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

loaded_accounts as (
    select workspace_id, customer_id, email
    from accounts
    where {{ in_pending_loads('shopify', 'accounts.load_epoch') }}
),

refunded_orders as (
    select distinct workspace_id, order_id
    from {{ ref('stg_shopify__refunds') }} as refunds
    where {{ in_pending_loads('shopify', 'refunds.load_epoch') }}
),

{%- if identified is not none %}
-- workspaces whose orders were dated in another timezone (all of them when the timezone was not kept)
moved_workspaces as (
    select distinct orders.workspace_id
    from orders
    inner join workspaces
        on workspaces.workspace_id = orders.workspace_id
    {%- if dated %}
    left join (select distinct workspace_id, timezone from {{ identified }}) as built
        on built.workspace_id = orders.workspace_id
    where built.timezone is distinct from workspaces.timezone
    {%- endif %}
),
{%- endif %}

{%- if customers is not none %}
vanished_accounts as (
    select built.workspace_id, built.customer_id, built.person_id
    from {{ customers }} as built
    where built.customer_id is not null
        and not exists (
            select 1 from accounts
            where accounts.workspace_id = built.workspace_id
                and accounts.customer_id = built.customer_id
        )
),
{%- endif %}

-- Each condition a join to a set of distinct keys, not an `exists` under the `or`: Postgres runs such an
-- `exists` as a subquery once per order unless it estimates the subquery's rows to fit in work_mem, and
-- the vanished accounts, an anti-join, are estimated at a fraction of every account: every order scanned
-- them (docs/performance.md, "Postgres after a small change: two `or`s run once per row").
changed_orders as (
    select orders.workspace_id, orders.order_id
    from orders
    left join (select distinct workspace_id, customer_id from loaded_accounts) as loaded
        on loaded.workspace_id = orders.workspace_id
        and loaded.customer_id = orders.customer_id
    {%- if customers is not none %}
    left join (select distinct workspace_id, customer_id from vanished_accounts) as vanished
        on vanished.workspace_id = orders.workspace_id
        and vanished.customer_id = orders.customer_id
    {%- endif %}
    left join refunded_orders
        on refunded_orders.workspace_id = orders.workspace_id
        and refunded_orders.order_id = orders.order_id
    where {{ in_pending_loads('shopify', 'orders.load_epoch') }}
        or loaded.customer_id is not null
        {%- if customers is not none %}
        or vanished.customer_id is not null
        {%- endif %}
        or refunded_orders.order_id is not null
        {%- if identified is not none %}
        or orders.workspace_id in (select workspace_id from moved_workspaces)
        {%- endif %}
),

final as (
    select
        changed_orders.workspace_id,
        changed_orders.order_id,
        {{ 'built.person_id' if identified is not none else 'cast(null as varchar)' }} as person_id
    from changed_orders
    {%- if identified is not none %}
    left join {{ identified }} as built
        on built.workspace_id = changed_orders.workspace_id
        and built.order_id = changed_orders.order_id

    union all

    select built.workspace_id, built.order_id, built.person_id
    from {{ identified }} as built
    where not exists (
        select 1 from orders
        where orders.workspace_id = built.workspace_id
            and orders.order_id = built.order_id
    )
    {%- endif %}

    union all

    select workspace_id, cast(null as varchar) as order_id,
        {{ dbt.hash("'email:' || lower(email)") }} as person_id
    from loaded_accounts
    where email is not null
    {%- if customers is not none %}

    union all

    select built.workspace_id, cast(null as varchar) as order_id, built.person_id
    from {{ customers }} as built
    inner join loaded_accounts
        on loaded_accounts.workspace_id = built.workspace_id
        and loaded_accounts.customer_id = built.customer_id

    union all

    select workspace_id, cast(null as varchar) as order_id, person_id
    from vanished_accounts
    {%- endif %}
)

select * from final
