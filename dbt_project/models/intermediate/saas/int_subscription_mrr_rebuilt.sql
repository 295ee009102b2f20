{#- MRR before the first sync, rebuilt from invoices (Stripe keeps no older subscription state).

    Each subscription invoice line with a positive amount says that its item had that price and
    quantity over the line's service period: period lines in advance, and after a plan or seat
    change the proration line "remaining time on <new state>" from the change to the period end.
    Negative proration lines ("unused time on <old state>") only mark where the old state ended.
    Per item, a later-starting line takes over from an earlier one, so a change ends the state before
    it. Then, per subscription (docs/metrics.md, "Stripe's MRR rules"):
    - only service that was paid counts: lines of paid invoices, and of the invoice still open at
      the first sync of a subscription that was past_due then (the current past_due period). Drafts,
      voided and uncollectible invoices, and the invoices of an unpaid or incomplete subscription,
      give no MRR: its MRR ends where its last paid period ends;
    - trial lines (amount 0) and metered prices give no MRR; tax is never in a line's amount;
    - MRR ends when the cancellation was requested (canceled_at: at once, or a cancellation at the
      period end) or when the subscription ended, whichever is first; Stripe does not credit an
      immediate cancellation;
    - forever coupons apply as in the recorded history (discounts with their start and removal);
    - everything stops at the workspace's first sync, where recorded history takes over.
    Segments are valid on valid_from_at <= t < valid_to_at, in the subscription's currency.

    Incremental (macros/incremental_changes.sql): a run recomputes the subscriptions
    int_saas_changed_subscriptions lists, whose segments depend on nothing else. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ delete_changed(ref('int_saas_changed_subscriptions'), 'subscription_id') }}"
) }}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with lines as (
    select staged.* from {{ ref('stg_stripe__invoice_lines') }} as staged
    {%- if is_incremental() %}
    inner join {{ ref('int_saas_changed_subscriptions') }} as changed
        on changed.workspace_id = staged.workspace_id
        and changed.subscription_id = staged.subscription_id
    {%- endif %}
),

invoices as (
    select * from {{ ref('stg_stripe__invoices') }}
),

prices as (
    select * from {{ ref('stg_stripe__prices') }}
),

subscriptions as (
    select
        workspace_id,
        subscription_id,
        -- when MRR ended: the cancellation's request (canceled_at) or the end, whichever is first
        case
            when canceled_at is not null and (cancel_at_period_end or status = 'canceled')
                and (ended_at is null or canceled_at < ended_at)
                then canceled_at
            else ended_at
        end as mrr_ended_at
    from {{ ref('stg_stripe__subscriptions') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

forever_discounts as (
    select * from {{ ref('int_forever_discounts') }}
),

versions as (
    select * from {{ ref('stg_stripe__subscription_versions') }}
),

-- each subscription's status when recorded history begins (its earliest version)
-- (the first time by a window, not a join back to a min per subscription: Postgres estimated that
-- join at a few rows and merged the invoices with every first status of their workspace)
first_statuses as (
    select workspace_id, subscription_id, status
    from (
        select workspace_id, subscription_id, status, valid_from_at,
            min(valid_from_at) over (partition by workspace_id, subscription_id) as first_at
        from versions
    ) as dated
    where valid_from_at = first_at
),

-- the invoices whose service counts: paid, or the open period of a subscription past_due at the first sync
paid_invoices as (
    select invoices.workspace_id, invoices.invoice_id, invoices.customer_id
    from invoices
    left join workspaces
        on workspaces.workspace_id = invoices.workspace_id
    left join first_statuses
        on first_statuses.workspace_id = invoices.workspace_id
        and first_statuses.subscription_id = invoices.subscription_id
    where not invoices.is_deleted
        and (
            invoices.paid_at is not null
            or invoices.status = 'paid'
            or (
                first_statuses.status = 'past_due'
                and invoices.finalized_at < workspaces.first_synced_at
                and coalesce(invoices.voided_at, invoices.marked_uncollectible_at, workspaces.first_synced_at)
                    >= workspaces.first_synced_at
            )
        )
),

item_lines as (
    select
        lines.workspace_id,
        invoices.customer_id,
        lines.subscription_id,
        coalesce(lines.subscription_item_id, lines.price_id) as item_key,
        lines.currency,
        lines.period_start_at,
        lines.period_end_at,
        case when lines.amount > 0
            then {{ saas_monthly_amount('prices.unit_amount * lines.quantity', 'prices.recurring_interval', 'prices.recurring_interval_count') }}
            else 0
        end as item_mrr,
        prices.recurring_interval,
        prices.recurring_interval_count
    from lines
    inner join paid_invoices as invoices
        on invoices.workspace_id = lines.workspace_id
        and invoices.invoice_id = lines.invoice_id
    inner join prices
        on prices.workspace_id = lines.workspace_id
        and prices.price_id = lines.price_id
    where lines.subscription_id is not null
        and prices.recurring_interval is not null
        and coalesce(prices.usage_type, 'licensed') <> 'metered'
        and lines.period_end_at > lines.period_start_at
),

item_states as (
    -- one state per item and start time; a positive line wins over the credit for the old state
    select
        workspace_id,
        customer_id,
        subscription_id,
        item_key,
        currency,
        period_start_at as valid_from_at,
        max(period_end_at) as period_end_at,
        max(item_mrr) as item_mrr,
        max(recurring_interval) as recurring_interval,
        max(recurring_interval_count) as recurring_interval_count
    from item_lines
    group by workspace_id, customer_id, subscription_id, item_key, currency, period_start_at
),

-- a subscription with one item (85% of them at large@0.1): its segments are the item's, whose states
-- never overlap (each ends where the next starts at the latest), so the ranges below are not needed
one_item_subscriptions as (
    select workspace_id, subscription_id, min(item_key) = max(item_key) as has_one_item
    from item_states
    group by workspace_id, subscription_id
),

item_segments as (
    select
        item_states.workspace_id,
        item_states.customer_id,
        item_states.subscription_id,
        item_states.item_key,
        item_states.currency,
        item_states.valid_from_at,
        -- the next state of the same item ends this one; so do the subscription's end and the first sync
        least(
            item_states.period_end_at,
            coalesce(lead(item_states.valid_from_at) over (
                partition by item_states.workspace_id, item_states.subscription_id, item_states.item_key
                order by item_states.valid_from_at
            ), item_states.period_end_at),
            coalesce(subscriptions.mrr_ended_at, item_states.period_end_at),
            coalesce(workspaces.first_synced_at, item_states.period_end_at)
        ) as valid_to_at,
        item_states.item_mrr,
        item_states.recurring_interval,
        item_states.recurring_interval_count,
        one_item_subscriptions.has_one_item
    from item_states
    inner join one_item_subscriptions
        on one_item_subscriptions.workspace_id = item_states.workspace_id
        and one_item_subscriptions.subscription_id = item_states.subscription_id
    left join subscriptions
        on subscriptions.workspace_id = item_states.workspace_id
        and subscriptions.subscription_id = item_states.subscription_id
    left join workspaces
        on workspaces.workspace_id = item_states.workspace_id
),

-- several items: the subscription's segments run between every start and end of its items' segments
boundaries as (
    select workspace_id, subscription_id, valid_from_at as boundary_at from item_segments
    where valid_to_at > valid_from_at and not has_one_item
    union
    select workspace_id, subscription_id, valid_to_at as boundary_at from item_segments
    where valid_to_at > valid_from_at and not has_one_item
),

subscription_ranges as (
    select
        workspace_id,
        subscription_id,
        boundary_at as valid_from_at,
        lead(boundary_at) over (partition by workspace_id, subscription_id order by boundary_at) as valid_to_at
    from boundaries
),

subscription_segments as (
    select
        subscription_ranges.workspace_id,
        max(item_segments.customer_id) as customer_id,
        subscription_ranges.subscription_id,
        max(item_segments.currency) as currency,
        subscription_ranges.valid_from_at,
        subscription_ranges.valid_to_at,
        sum(item_segments.item_mrr) as gross_mrr,
        -- an amount_off coupon is normalized with the subscription's billing interval
        max(item_segments.recurring_interval) as billing_interval,
        max(item_segments.recurring_interval_count) as billing_interval_count
    from subscription_ranges
    inner join item_segments
        on item_segments.workspace_id = subscription_ranges.workspace_id
        and item_segments.subscription_id = subscription_ranges.subscription_id
        and item_segments.valid_from_at <= subscription_ranges.valid_from_at
        and item_segments.valid_to_at >= subscription_ranges.valid_to_at
    where subscription_ranges.valid_to_at is not null
    group by subscription_ranges.workspace_id, subscription_ranges.subscription_id,
        subscription_ranges.valid_from_at, subscription_ranges.valid_to_at
    union all
    select
        workspace_id,
        customer_id,
        subscription_id,
        currency,
        valid_from_at,
        valid_to_at,
        item_mrr as gross_mrr,
        recurring_interval as billing_interval,
        recurring_interval_count as billing_interval_count
    from item_segments
    where has_one_item and valid_to_at > valid_from_at
),

segment_discounts as (
    -- the forever discounts applied to the subscription when the segment starts
    select
        subscription_segments.workspace_id,
        subscription_segments.subscription_id,
        subscription_segments.valid_from_at,
        max(forever_discounts.percent_off) as percent_off,
        sum(forever_discounts.amount_off) as amount_off
    from subscription_segments
    inner join forever_discounts
        on forever_discounts.workspace_id = subscription_segments.workspace_id
        and forever_discounts.subscription_id = subscription_segments.subscription_id
        and forever_discounts.started_at <= subscription_segments.valid_from_at
        and (forever_discounts.ended_at is null or forever_discounts.ended_at > subscription_segments.valid_from_at)
    group by subscription_segments.workspace_id, subscription_segments.subscription_id,
        subscription_segments.valid_from_at
),

final as (
    select
        subscription_segments.workspace_id,
        subscription_segments.customer_id,
        subscription_segments.subscription_id,
        subscription_segments.currency,
        subscription_segments.valid_from_at,
        subscription_segments.valid_to_at,
        cast(greatest(
            subscription_segments.gross_mrr * (1 - coalesce(segment_discounts.percent_off, 0) / 100)
                - coalesce({{ saas_monthly_amount('segment_discounts.amount_off',
                    'subscription_segments.billing_interval', 'subscription_segments.billing_interval_count') }}, 0),
            0
        ) as decimal(38, 9)) as mrr,
        -- where the rebuild stopped: a change rebuilds the workspace (int_saas_changed_subscriptions)
        workspaces.first_synced_at
    from subscription_segments
    left join segment_discounts
        on segment_discounts.workspace_id = subscription_segments.workspace_id
        and segment_discounts.subscription_id = subscription_segments.subscription_id
        and segment_discounts.valid_from_at = subscription_segments.valid_from_at
    left join workspaces
        on workspaces.workspace_id = subscription_segments.workspace_id
)

select * from final
