{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where change_date >= (select movements_recompute_from from {{ ref('int_saas_workspaces') }} as w where w.workspace_id = {{ this.identifier }}.workspace_id){% endif %}"
) }}
{#- One row per workspace, customer and day whose end-of-day MRR differs from the day before
    (docs/metrics.md, "Movements"): the customer's change points (int_customer_mrr_changes),
    classified, in the reporting currency at the change day's rate.

    Incremental: each run deletes and recomputes, per workspace already in the table, the days from
    `movements_recompute_from` (int_saas_workspaces: the newest recorded version's day minus
    `saas_movements_lookback_days`, default 35), and every day of a workspace that is not in it yet.
    Why 35: an incremental sync replays events at most 30 days old (Stripe's retention; an older
    cursor forces a full resync), so every version it loads, however late it arrives, is dated
    within 30 days of the newest one. Older corrections need `dbt build --full-refresh`. -#}
-- depends_on: {{ ref('int_saas_workspaces') }}
with customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }}
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
    select changes.*
    from changes
    {% if is_incremental() %}
    left join (select distinct workspace_id from {{ this }}) as built
        on built.workspace_id = changes.workspace_id
    left join workspaces
        on workspaces.workspace_id = changes.workspace_id
    where built.workspace_id is null
        or changes.change_date >= workspaces.movements_recompute_from
    {% endif %}
)

select * from final
