{#- Per workspace and day: how many records the connectors set aside (quarantine) and have not
    resolved yet. A record counts on its own day in the workspace's timezone (an order's creation),
    or on the day it was first set aside when its own date is not sane (an order dated 2999). -#}
{%- set quarantines = [
    'quarantine_shopify_orders', 'quarantine_shopify_products', 'quarantine_shopify_customers',
    'quarantine_stripe_customers', 'quarantine_stripe_products', 'quarantine_stripe_prices',
    'quarantine_stripe_coupons', 'quarantine_stripe_discounts', 'quarantine_stripe_subscriptions',
    'quarantine_stripe_invoices',
] -%}

with records as (
    {%- for model in quarantines %}
    select workspace_id, source, object_table, object_id, object_time, first_seen_at
    from {{ ref(model) }}
    where is_open
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

dated as (
    select
        records.workspace_id,
        {{ local_date('coalesce(records.object_time, records.first_seen_at)', 'workspaces.timezone') }} as date,
        records.source,
        records.object_table,
        records.object_id
    from records
    inner join workspaces on workspaces.workspace_id = records.workspace_id
),

final as (
    select
        workspace_id,
        date,
        source,
        object_table,
        count(distinct object_id) as quarantined_objects,
        count(*) as open_violations
    from dated
    group by workspace_id, date, source, object_table
)

select * from final
