{#- What ecommerce_cohorts sums, per person: one row per workspace and customer with a first sold
    order (activity_month null: the cohort month, the first and second sold order days), and one
    per such customer and month with a sold order or a refund of theirs (active: bought in that
    month; sold orders; net sales in the shop's currency, and in the reporting currency, each order
    and refund converted at its own day's rate, null where a rate is missing).

    Incremental (macros/incremental_changes.sql): a run rebuilds every row of the people it changed
    (before and after the change: a person's cohort moves with their first order), and, for every
    person, the months from the one of the workspace's refresh_from (int_ecommerce_refresh_windows)
    on: its exchange rates may have changed from that day (a new rate day moves every later day's
    rate), and a new workspace, a changed timezone or reporting currency, or a missing rate rebuild
    the workspace from 1900. The person rows carry no money, so only people's changes touch them. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ cohort_activity_delete('people') }}", "{{ cohort_activity_delete('months') }}"]
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
-- depends_on: {{ ref('int_orders_identified') }}
-- depends_on: {{ ref('int_ecommerce_refresh_windows') }}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

{%- if is_incremental() %}

changed_people as (
    select distinct workspace_id, person_id from {{ changed_people() }} as changed
),

-- the first month each workspace's money is rebuilt from
windows as (
    select workspace_id, cast({{ dbt.date_trunc('month', 'refresh_from') }} as date) as first_month
    from {{ ref('int_ecommerce_refresh_windows') }}
),
{%- endif %}

-- Postgres: not materialized, so that each reader joins the table itself by hash (materialized, the
-- CTE had no statistics and both joins sorted every customer; docs/performance.md, "Postgres after a
-- small change: the CTEs read twice")
customers as {{ 'not materialized' if target.type == 'postgres' }} (
    select * from {{ ref('customers') }}
    where first_order_date is not null
),

-- not materialized: read through by the filters and joins below (DuckDB would copy the whole table first)
orders as not materialized (
    select * from {{ ref('orders') }}
    where not is_cancelled
),

-- the changed people's rows: their first two sold orders
people as (
    select
        customers.workspace_id,
        customers.person_id,
        customers.first_order_date,
        ranked.order_date as second_order_date
    from customers
    left join (
        select
            orders.workspace_id,
            orders.person_id,
            orders.order_date,
            row_number() over (partition by orders.workspace_id, orders.person_id
                               order by orders.created_at, orders.order_id) as order_number
        from orders
        {%- if is_incremental() %}
        inner join changed_people
            on changed_people.workspace_id = orders.workspace_id
            and changed_people.person_id = orders.person_id
        {%- endif %}
    ) as ranked
        on ranked.workspace_id = customers.workspace_id
        and ranked.person_id = customers.person_id
        and ranked.order_number = 2
    {%- if is_incremental() %}
    inner join changed_people
        on changed_people.workspace_id = customers.workspace_id
        and changed_people.person_id = customers.person_id
    {%- endif %}
),

-- sold orders (the buyer is active) and refunds (money only) of the rows rebuilt: the changed
-- people's, and everyone's from their workspace's first rebuilt month
dated as (
    select workspace_id, person_id, order_date as day, currency, 1 as orders, discounted_sales as net_sales
    from orders

    union all

    select workspace_id, person_id, refund_date as day, currency, 0 as orders, -refunded_sales as net_sales
    from {{ ref('refunds') }}
),

rebuilt as (
    select dated.*
    from dated
    {%- if is_incremental() %}
    where exists (
            select 1 from changed_people
            where changed_people.workspace_id = dated.workspace_id
                and changed_people.person_id = dated.person_id
        )
        or dated.day >= (select windows.first_month from windows where windows.workspace_id = dated.workspace_id)
    {%- endif %}
),

activity as (
    select
        rebuilt.workspace_id,
        rebuilt.person_id,
        cast({{ dbt.date_trunc('month', 'customers.first_order_date') }} as date) as cohort_month,
        cast({{ dbt.date_trunc('month', 'rebuilt.day') }} as date) as activity_month,
        rebuilt.orders,
        rebuilt.net_sales,
        {{ fx_convert('rebuilt.net_sales', 'rebuilt.currency', 'workspaces.reporting_currency', 4) }} as reporting_net_sales
    from rebuilt
    inner join customers
        on customers.workspace_id = rebuilt.workspace_id
        and customers.person_id = rebuilt.person_id
    inner join workspaces on workspaces.workspace_id = rebuilt.workspace_id
    {{ fx_rate_joins('rebuilt.day', 'rebuilt.currency', 'workspaces.reporting_currency') }}
),

final as (
    select
        workspace_id,
        person_id,
        cast({{ dbt.date_trunc('month', 'first_order_date') }} as date) as cohort_month,
        cast(null as date) as activity_month,
        first_order_date,
        second_order_date,
        cast(null as integer) as is_active,
        cast(null as bigint) as orders,
        cast(null as decimal(38, 9)) as net_sales,
        cast(null as decimal(38, 4)) as reporting_net_sales
    from people

    union all

    select
        workspace_id,
        person_id,
        cohort_month,
        activity_month,
        cast(null as date) as first_order_date,
        cast(null as date) as second_order_date,
        cast(max(orders) as integer) as is_active,
        cast(sum(orders) as bigint) as orders,
        cast(sum(net_sales) as decimal(38, 9)) as net_sales,
        cast({{ sum_known('reporting_net_sales') }} as decimal(38, 4)) as reporting_net_sales
    from activity
    group by workspace_id, person_id, cohort_month, activity_month
)

select * from final
