{#- One row per person (see int_orders_identified): guest and account orders of one e-mail together.

    First and last orders and the order count only look at orders that count as sold (not
    cancelled), as new/returning customers do in docs/metrics.md; a person whose orders were all
    cancelled is kept, with no first order.

    Incremental (macros/incremental_changes.sql): a run rebuilds the people of the orders it
    changed, before and after the change. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_changed(changed_people(), 'person_id') }}"
) }}
-- depends_on: {{ ref('int_ecommerce_changes') }}
with orders as (
    select identified.* from {{ ref('int_orders_identified') }} as identified
    {%- if is_incremental() %}
    inner join {{ changed_people() }} as changed
        on changed.workspace_id = identified.workspace_id
        and changed.person_id = identified.person_id
    {%- endif %}
),

unified as (
    select
        workspace_id,
        person_id,
        max(email) as email,
        -- the account, when the person has one; the greatest id when several share the e-mail
        max(customer_id) as customer_id,
        min(case when not is_cancelled then created_at end) as first_order_at,
        min(case when not is_cancelled then order_date end) as first_order_date,
        max(case when not is_cancelled then created_at end) as last_order_at,
        cast(sum(case when not is_cancelled then 1 else 0 end) as bigint) as order_count,
        cast(sum(case when is_cancelled then 1 else 0 end) as bigint) as cancelled_order_count
    from orders
    group by workspace_id, person_id
)

select * from unified
