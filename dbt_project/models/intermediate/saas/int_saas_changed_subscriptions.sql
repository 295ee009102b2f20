{#- The subscriptions whose MRR rebuilt from invoices (int_subscription_mrr_rebuilt) an incremental
    run recomputes (macros/incremental_changes.sql): one row per workspace and subscription with a
    row in a pending Stripe load among what that model reads (an invoice line, an invoice, the
    subscription, a version, a discount), with an invoice line on such an invoice, or on a price
    or under a coupon of a pending load; and every subscription of a workspace whose first sync
    (where the rebuild stops) moved. A table of its own, so that the rebuild's delete and insert
    read the very same set. -#}
{%- set rebuilt = model_relation('int_subscription_mrr_rebuilt') if execute else none %}
{%- set has_first_sync = rebuilt is not none
    and 'first_synced_at' in adapter.get_columns_in_relation(rebuilt) | map(attribute='name') | map('lower') | list %}
-- depends_on: {{ ref('int_saas_workspaces') }}
with lines as (
    select * from {{ ref('stg_stripe__invoice_lines') }}
),

invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
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
    select workspace_id, subscription_id from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    where {{ in_pending_loads('stripe', 'subscriptions.load_epoch') }}
    union all
    select workspace_id, subscription_id from {{ ref('stg_stripe__subscription_versions') }} as versions
    where {{ in_pending_loads('stripe', 'versions.load_epoch') }}
    union all
    select workspace_id, subscription_id from discounts
    where {{ in_pending_loads('stripe', 'discounts.load_epoch') }}
        or exists (select 1 from loaded_coupons
                   where loaded_coupons.workspace_id = discounts.workspace_id
                       and loaded_coupons.coupon_id = discounts.coupon_id)
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
    inner join touched
        on touched.workspace_id = invoices.workspace_id
        and touched.subscription_id = invoices.subscription_id
    {%- if rebuilt is not none %}
    union all
    -- workspaces whose first sync moved (or was not kept): all of their subscriptions
    select lines.workspace_id, lines.subscription_id
    from lines
    inner join {{ ref('int_saas_workspaces') }} as workspaces
        on workspaces.workspace_id = lines.workspace_id
    {%- if has_first_sync %}
    inner join (select distinct workspace_id, first_synced_at from {{ rebuilt }}) as built
        on built.workspace_id = lines.workspace_id
    where built.first_synced_at is distinct from workspaces.first_synced_at
    {%- endif %}
    {%- endif %}
),

final as (
    select distinct workspace_id, subscription_id
    from with_invoice_lines
    where subscription_id is not null
)

select * from final
