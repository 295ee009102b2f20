{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('saas', 'date_day') }}"
) }}
{#- Revenue retention by month (docs/metrics.md, "SaaS ratios"), month to date: one row per SaaS
    workspace and day of each month that starts with paying customers. The month's cohort is the
    customers with MRR > 0 at the end of the day before the month starts; on each day of the month:
    - mrr_at_month_start: the cohort's MRR then;
    - retained_mrr: the cohort's MRR now (expansion, contraction, churn and a comeback included);
    - retained_gross_mrr: Σ per customer of min(MRR now, MRR at the month's start) (no expansion).
    Per customer in the billing currency; summed per currency, then converted at the day's rate
    (the three at the same rate, so the ratios hold no FX effect). Built from the customers' MRR
    change points (int_customer_mrr_changes): the cohort's figures move on its changes' days only. -#}
-- depends_on: {{ ref('int_saas_refresh_windows') }}
with customer_changes as (
    select * from {{ ref('int_customer_mrr_changes') }}
),

workspaces as (
    select * from {{ ref('int_saas_workspaces') }}
),

days as (
    select * from {{ ref('int_days') }}
),

-- each customer's MRR in the billing currency from one change day until the next
customer_states as (
    select
        workspace_id,
        customer_id,
        currency,
        change_date,
        lead(change_date) over (partition by workspace_id, customer_id order by change_date) as next_change_date,
        mrr_after,
        mrr_after - mrr_before as delta
    from customer_changes
),

-- the months from the first change's to the latest as-of day (a cohort needs a change before its month)
months as (
    select distinct cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start
    from days
    where date_day >= (select min(change_date) from customer_changes)
        and date_day <= (select max(as_of_day) from workspaces)
),

-- the customers paying at the end of the day before the month starts, with that MRR
cohort as (
    select
        customer_states.workspace_id,
        customer_states.customer_id,
        customer_states.currency,
        months.month_start,
        cast({{ dbt.dateadd('month', 1, 'months.month_start') }} as date) as next_month_start,
        customer_states.mrr_after as start_mrr
    from customer_states
    inner join months
        on customer_states.change_date < months.month_start
        and (customer_states.next_change_date is null or customer_states.next_change_date >= months.month_start)
    inner join workspaces
        on workspaces.workspace_id = customer_states.workspace_id
    where customer_states.mrr_after > 0
        and months.month_start <= workspaces.as_of_day
),

-- the cohort's changes within its month: of MRR, and of MRR capped at the month's start
cohort_changes as (
    select
        cohort.workspace_id,
        cohort.currency,
        cohort.month_start,
        customer_states.change_date as date_day,
        sum(customer_states.delta) as net_delta,
        sum(
            least(customer_states.mrr_after, cohort.start_mrr)
            - least(customer_states.mrr_after - customer_states.delta, cohort.start_mrr)
        ) as gross_delta
    from cohort
    inner join customer_states
        on customer_states.workspace_id = cohort.workspace_id
        and customer_states.customer_id = cohort.customer_id
        and customer_states.change_date >= cohort.month_start
        and customer_states.change_date < cohort.next_month_start
    group by cohort.workspace_id, cohort.currency, cohort.month_start, customer_states.change_date
),

cohort_totals as (
    select workspace_id, currency, month_start, next_month_start, sum(start_mrr) as start_mrr
    from cohort
    group by workspace_id, currency, month_start, next_month_start
),

currency_days as (
    select
        cohort_totals.workspace_id,
        cohort_totals.currency,
        days.date_day,
        cohort_totals.start_mrr,
        cohort_totals.start_mrr + sum(coalesce(cohort_changes.net_delta, 0)) over (
            partition by cohort_totals.workspace_id, cohort_totals.currency, cohort_totals.month_start
            order by days.date_day rows between unbounded preceding and current row
        ) as retained_mrr,
        cohort_totals.start_mrr + sum(coalesce(cohort_changes.gross_delta, 0)) over (
            partition by cohort_totals.workspace_id, cohort_totals.currency, cohort_totals.month_start
            order by days.date_day rows between unbounded preceding and current row
        ) as retained_gross_mrr
    from cohort_totals
    inner join workspaces
        on workspaces.workspace_id = cohort_totals.workspace_id
    inner join days
        on days.date_day >= cohort_totals.month_start
        and days.date_day < cohort_totals.next_month_start
        and days.date_day <= workspaces.as_of_day
    left join cohort_changes
        on cohort_changes.workspace_id = cohort_totals.workspace_id
        and cohort_changes.currency = cohort_totals.currency
        and cohort_changes.month_start = cohort_totals.month_start
        and cohort_changes.date_day = days.date_day
    -- the months holding a day this run builds (the next month starts after it): the sums run
    -- from the month's first day
    where {{ refresh_days('saas', 'cohort_totals.workspace_id', 'cohort_totals.next_month_start', days_before=-1) }}
),

final as (
    select
        currency_days.workspace_id,
        currency_days.date_day,
        {%- for amount in ['start_mrr', 'retained_mrr', 'retained_gross_mrr'] %}
        -- 12 decimals: net revenue retention divides by mrr_at_month_start, which may be small
        cast(sum({{ fx_convert('currency_days.' ~ amount, 'currency_days.currency', 'workspaces.reporting_currency', 12,
                               'billing', 'reporting') }})
            as decimal(38, 12)) as {{ 'mrr_at_month_start' if amount == 'start_mrr' else amount }}{{ ',' if not loop.last }}
        {%- endfor %}
    from currency_days
    inner join workspaces
        on workspaces.workspace_id = currency_days.workspace_id
    {{ fx_rate_joins('currency_days.date_day', 'currency_days.currency', 'workspaces.reporting_currency',
                     'billing', 'reporting') }}
    -- the days this run builds (all of them in a full build; macros/incremental_days.sql)
    where {{ refresh_days('saas', 'currency_days.workspace_id', 'currency_days.date_day') }}
    group by currency_days.workspace_id, currency_days.date_day
)

select * from final
