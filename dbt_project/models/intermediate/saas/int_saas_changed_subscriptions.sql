{#- The subscriptions an incremental run recomputes (macros/incremental_changes.sql): the MRR rebuilt
    from invoices (int_subscription_mrr_rebuilt), the recorded MRR, the segments and the change
    points, the plans, the items and the subscriptions mart. One row per workspace and subscription
    - with a row in a pending Stripe load among what those models read (an invoice line, an invoice,
      the subscription, a version or its items, a current item, a discount), with an invoice line on
      such an invoice, or on a price or under a coupon of a pending load, with an item of a product
      of a pending load, or of the customer of a pending discount that names no subscription;
    - of a workspace whose first sync (where the rebuild stops) or timezone (which dates every
      change point) moved, or that is new to the SaaS models: all of its subscriptions;
    - with a segment starting or ending on a day between the as-of day the change points were built
      to and the one now (int_saas_workspaces): their last change points move with it (a
      future-dated end crosses it).
    The state the models were last built with (their first sync, timezone, as-of day) is read
    without a ref (they are built after this model). A table of its own, so that every model's
    delete and insert read the very same set. `customer_id`: the subscription's customer in the
    change points before this run (null for a new one), which int_saas_changed_customers rebuilds
    too. -#}
{%- set rebuilt = model_relation('int_subscription_mrr_rebuilt') if execute else none %}
{%- set has_first_sync = rebuilt is not none
    and 'first_synced_at' in adapter.get_columns_in_relation(rebuilt) | map(attribute='name') | map('lower') | list %}
{%- set segments_built = model_relation('int_subscription_mrr_segments') if execute else none %}
{%- set changes_built = model_relation('int_subscription_mrr_changes') if execute else none %}
{%- set state = saas_workspace_state_relation() if execute else none %}
-- depends_on: {{ ref('int_saas_workspaces') }}
{# The staged tables read more than once name their columns, and on Postgres are not materialized:
    materialized, Postgres computed every column of the views (amounts, timestamps) for every row,
    and planned the joins on them without statistics (docs/performance.md, "Postgres after a small
    change: the CTEs read twice"). -#}
with lines as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, invoice_id, subscription_id, price_id, load_epoch
    from {{ ref('stg_stripe__invoice_lines') }}
),

invoices as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, invoice_id, subscription_id, load_epoch
    from {{ ref('stg_stripe__invoices') }}
),

loaded_invoices as (
    select workspace_id, invoice_id, subscription_id
    from invoices
    where {{ in_pending_loads('stripe', 'invoices.load_epoch') }}
),

loaded_prices as (
    select workspace_id, price_id
    from {{ ref('stg_stripe__prices') }} as prices
    where {{ in_pending_loads('stripe', 'prices.load_epoch') }}
),

loaded_coupons as (
    select workspace_id, coupon_id
    from {{ ref('stg_stripe__coupons') }} as coupons
    where {{ in_pending_loads('stripe', 'coupons.load_epoch') }}
),

discounts as (
    select * from {{ ref('stg_stripe__discounts') }}
),

subscriptions as {{ 'not materialized' if target.type == 'postgres' }} (
    select workspace_id, subscription_id, customer_id, load_epoch
    from {{ ref('stg_stripe__subscriptions') }}
),

items as (
    select * from {{ ref('stg_stripe__subscription_items') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

loaded_products as (
    select workspace_id, product_id
    from {{ ref('stg_stripe__products') }} as products
    where {{ in_pending_loads('stripe', 'products.load_epoch') }}
),

-- a discount of a pending load, or under a coupon of one
loaded_discounts as (
    select workspace_id, subscription_id, customer_id
    from discounts
    where {{ in_pending_loads('stripe', 'discounts.load_epoch') }}
        or exists (select 1 from loaded_coupons
                   where loaded_coupons.workspace_id = discounts.workspace_id
                       and loaded_coupons.coupon_id = discounts.coupon_id)
),

-- workspaces whose change points are dated differently: a moved timezone or first sync, or new
moved_workspaces as (
    select workspaces.workspace_id
    from workspaces
    {%- if state is not none %}
    left join {{ state }} as built
        on built.workspace_id = workspaces.workspace_id
    where built.workspace_id is null or built.timezone is distinct from workspaces.timezone
    {%- endif %}
    {%- if rebuilt is not none %}
    union
    select workspaces.workspace_id
    from workspaces
    {%- if has_first_sync %}
    inner join (select distinct workspace_id, first_synced_at from {{ rebuilt }}) as built
        on built.workspace_id = workspaces.workspace_id
    where built.first_synced_at is distinct from workspaces.first_synced_at
    {%- endif %}
    {%- endif %}
),

touched as (
    select workspace_id, subscription_id from lines
    where {{ in_pending_loads('stripe', 'lines.load_epoch') }}
        or exists (select 1 from loaded_invoices
                   where loaded_invoices.workspace_id = lines.workspace_id
                       and loaded_invoices.invoice_id = lines.invoice_id)
        or exists (select 1 from loaded_prices
                   where loaded_prices.workspace_id = lines.workspace_id
                       and loaded_prices.price_id = lines.price_id)
    union all
    select workspace_id, subscription_id from loaded_invoices
    union all
    select workspace_id, subscription_id from subscriptions
    where {{ in_pending_loads('stripe', 'subscriptions.load_epoch') }}
    union all
    select workspace_id, subscription_id from {{ ref('stg_stripe__subscription_versions') }} as versions
    where {{ in_pending_loads('stripe', 'versions.load_epoch') }}
    union all
    select workspace_id, subscription_id from {{ ref('stg_stripe__subscription_version_items') }} as version_items
    where {{ in_pending_loads('stripe', 'version_items.load_epoch') }}
    union all
    select workspace_id, subscription_id from items
    where {{ in_pending_loads('stripe', 'items.load_epoch') }}
        or exists (select 1 from loaded_products
                   where loaded_products.workspace_id = items.workspace_id
                       and loaded_products.product_id = items.product_id)
    union all
    select workspace_id, subscription_id from loaded_discounts
    union all
    -- a discount on the customer: a version may list it
    select subscriptions.workspace_id, subscriptions.subscription_id
    from subscriptions
    inner join loaded_discounts
        on loaded_discounts.workspace_id = subscriptions.workspace_id
        and loaded_discounts.customer_id = subscriptions.customer_id
    where loaded_discounts.subscription_id is null
),

-- an invoice's status decides whether its lines count, whatever subscription each line names
with_invoice_lines as (
    select workspace_id, subscription_id from touched
    union all
    select lines.workspace_id, lines.subscription_id
    from lines
    inner join invoices
        on invoices.workspace_id = lines.workspace_id
        and invoices.invoice_id = lines.invoice_id
    -- each touched subscription once: touched holds a row per pending line (every line on a first
    -- build), and joining those would pair every line of a subscription with every other
    inner join (select distinct workspace_id, subscription_id from touched) as touched_subscriptions
        on touched_subscriptions.workspace_id = invoices.workspace_id
        and touched_subscriptions.subscription_id = invoices.subscription_id
    union all
    -- every subscription of a moved workspace: those with lines, a version or a row
    select lines.workspace_id, lines.subscription_id
    from lines
    where lines.workspace_id in (select workspace_id from moved_workspaces)
    union all
    select workspace_id, subscription_id from {{ ref('stg_stripe__subscription_versions') }} as versions
    where versions.workspace_id in (select workspace_id from moved_workspaces)
    union all
    select workspace_id, subscription_id from subscriptions
    where subscriptions.workspace_id in (select workspace_id from moved_workspaces)
    {%- if segments_built is not none and state is not none %}
    union all
    -- a segment boundary between the as-of day built to and today's (change points stop at it)
    select segments.workspace_id, segments.subscription_id
    from {{ segments_built }} as segments
    inner join workspaces
        on workspaces.workspace_id = segments.workspace_id
    inner join {{ state }} as built
        on built.workspace_id = segments.workspace_id
        and built.as_of_day <> workspaces.as_of_day
    where ({{ local_date('segments.valid_from_at', 'workspaces.timezone') }}
                > least(built.as_of_day, workspaces.as_of_day)
            and {{ local_date('segments.valid_from_at', 'workspaces.timezone') }}
                <= greatest(built.as_of_day, workspaces.as_of_day))
        or ({{ local_date('segments.valid_to_at', 'workspaces.timezone') }}
                > least(built.as_of_day, workspaces.as_of_day)
            and {{ local_date('segments.valid_to_at', 'workspaces.timezone') }}
                <= greatest(built.as_of_day, workspaces.as_of_day))
    {%- endif %}
),

changed as (
    select distinct workspace_id, subscription_id
    from with_invoice_lines
    where subscription_id is not null
),

final as (
    select
        changed.workspace_id,
        changed.subscription_id,
        {%- if changes_built is not none %}
        built.customer_id
    from changed
    left join (select distinct workspace_id, subscription_id, customer_id from {{ changes_built }}) as built
        on built.workspace_id = changed.workspace_id
        and built.subscription_id = changed.subscription_id
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as customer_id
    from changed
        {%- endif %}
)

select * from final
