{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('int_subscription_mrr_recorded') }}"
) }}
{#- MRR of each recorded subscription version (from the first sync on), in the subscription's
    currency, with docs/metrics.md's rules: active/past_due only, none once a cancellation at the
    period end is requested, metered items left out, each item normalized to a month, forever
    coupons only. Valid on valid_from_at <= t < valid_to_at.

    Incremental (macros/incremental_changes.sql): a run recomputes the subscriptions
    int_saas_changed_subscriptions lists. -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with versions as (
    select * from {{ ref('stg_stripe__subscription_versions') }} as versions
    where {{ saas_rebuilt_rows('int_subscription_mrr_recorded', 'versions') }}
),

version_items as (
    select * from {{ ref('stg_stripe__subscription_version_items') }} as version_items
    where {{ saas_rebuilt_rows('int_subscription_mrr_recorded', 'version_items') }}
),

forever_discounts as (
    select * from {{ ref('int_forever_discounts') }}
),

items_normalized as (
    select
        workspace_id,
        subscription_id,
        valid_from,
        sum(case when usage_type = 'metered' then 0
            else {{ saas_monthly_amount('unit_amount * quantity', 'recurring_interval', 'recurring_interval_count') }}
        end) as gross_mrr,
        -- an amount_off coupon is normalized with the subscription's billing interval
        max(case when usage_type <> 'metered' then recurring_interval end) as billing_interval,
        max(case when usage_type <> 'metered' then recurring_interval_count end) as billing_interval_count
    from version_items
    group by workspace_id, subscription_id, valid_from
),

-- the version's own discount list says which discounts applied while it was valid: one row per
-- version and discount id listed (each once)
version_discount_ids as (
    select distinct
        versions.workspace_id,
        versions.subscription_id,
        versions.valid_from,
        listed.discount_id
    from versions
    cross join lateral {{ json_array_strings('versions.discount_ids_json') }} as listed (discount_id)
),

version_discounts as (
    select
        version_discount_ids.workspace_id,
        version_discount_ids.subscription_id,
        version_discount_ids.valid_from,
        max(forever_discounts.percent_off) as percent_off,
        sum(forever_discounts.amount_off) as amount_off
    from version_discount_ids
    inner join forever_discounts
        on forever_discounts.workspace_id = version_discount_ids.workspace_id
        and forever_discounts.discount_id = version_discount_ids.discount_id
    group by version_discount_ids.workspace_id, version_discount_ids.subscription_id, version_discount_ids.valid_from
),

final as (
    select
        versions.workspace_id,
        versions.customer_id,
        versions.subscription_id,
        versions.currency,
        versions.status,
        versions.valid_from_at,
        versions.valid_to_at,
        case
            when versions.status not in ('active', 'past_due') then cast(0 as decimal(38, 9))
            -- Stripe's billing analytics: MRR leaves when the cancellation is requested
            when versions.cancel_at_period_end then cast(0 as decimal(38, 9))
            else cast(greatest(
                coalesce(items_normalized.gross_mrr, 0) * (1 - coalesce(version_discounts.percent_off, 0) / 100)
                    - coalesce({{ saas_monthly_amount('version_discounts.amount_off',
                        'items_normalized.billing_interval', 'items_normalized.billing_interval_count') }}, 0),
                0
            ) as decimal(38, 9))
        end as mrr
    from versions
    left join items_normalized
        on items_normalized.workspace_id = versions.workspace_id
        and items_normalized.subscription_id = versions.subscription_id
        and items_normalized.valid_from = versions.valid_from
    left join version_discounts
        on version_discounts.workspace_id = versions.workspace_id
        and version_discounts.subscription_id = versions.subscription_id
        and version_discounts.valid_from = versions.valid_from
)

select * from final
