{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('mrr_movements') }}"
) }}
{#- One row per workspace, customer and day whose end-of-day MRR differs from the day before
    (docs/metrics.md, "Movements"): the customer's change points (int_customer_mrr_changes),
    classified, in the reporting currency at the change day's rate.

    Incremental (macros/incremental_changes.sql): a run recomputes the customers
    int_saas_changed_customers lists, whatever the day of the change, every customer of a
    workspace whose reporting currency moved, and every change from the first day whose exchange
    rates changed (saas_rates_changed_from; before 2026-12-06 any rate change rebuilt every
    workspace in full, and the as-of day's new rate moved it in every refresh). -#}
-- depends_on: {{ ref('int_saas_changed_customers') }}
-- the workspaces' state compared (saas_moved_workspaces): {{ ref('int_fx_rates_ranged') }}
-- the exchange rates' digests compared (saas_rates_changed_from): {{ ref('int_saas_day_digests') }}
with customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }} as customer_changes
    where {{ saas_rebuilt_rows('mrr_movements', 'customer_changes') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

converted as (
    select
        customer_changes.workspace_id,
        customer_changes.customer_id,
        customer_changes.change_date,
        customer_changes.currency,
        customer_changes.mrr_before,
        customer_changes.mrr_after,
        customer_changes.had_mrr_before,
        -- both sides at the change day's rate: a movement is the customer's change, not an FX move
        {{ fx_convert('customer_changes.mrr_before', 'customer_changes.currency', 'workspaces.reporting_currency', 9,
                      'billing', 'reporting') }} as mrr_before_reporting,
        {{ fx_convert('customer_changes.mrr_after', 'customer_changes.currency', 'workspaces.reporting_currency', 9,
                      'billing', 'reporting') }} as mrr_after_reporting
    from customer_changes
    inner join workspaces
        on workspaces.workspace_id = customer_changes.workspace_id
    {{ fx_rate_joins('customer_changes.change_date', 'customer_changes.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
),

changes as (
    select
        workspace_id,
        customer_id,
        change_date,
        currency,
        case
            when mrr_before = 0 and had_mrr_before then 'reactivation'
            when mrr_before = 0 then 'new'
            when mrr_after = 0 then 'churn'
            when mrr_after > mrr_before then 'expansion'
            else 'contraction'
        end as movement_type,
        mrr_before_reporting as mrr_before,
        mrr_after_reporting as mrr_after,
        cast(mrr_after_reporting - mrr_before_reporting as decimal(38, 9)) as delta,
        cast(mrr_after - mrr_before as decimal(38, 9)) as delta_in_billing_currency
    from converted
),

final as (
    select * from changes
)

select * from final
