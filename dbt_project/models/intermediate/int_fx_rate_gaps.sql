{#- The conversions a workspace needs and has no rate for: one row per workspace and currency its
    amounts are in (shop money, Stripe billing) that differs from its reporting currency and lacks a
    rate, in either currency, on the first local day it is needed (docs/metrics.md, "Currency").

    A rate applies from its day until the currency's next one, so a conversion needed from day D
    on lacks a rate exactly when a currency has none on or before D. The metric tables leave these
    workspaces out (absent, never 0) and the test fx_rate_for_every_conversion stores each row with
    its reason, which fails the workspace's partition in Dagster (docs/operations.md). -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

rates as (
    select currency, min(valid_from) as first_day from {{ ref('int_fx_rates_ranged') }} group by currency
),

needs as (
    select orders.workspace_id, orders.currency, 'ecommerce_daily_metrics' as model,
        min({{ local_date('orders.created_at', 'workspaces.timezone') }}) as first_day
    from {{ ref('stg_shopify__orders') }} as orders
    inner join workspaces on workspaces.workspace_id = orders.workspace_id
    group by orders.workspace_id, orders.currency
    union all
    select subscriptions.workspace_id, subscriptions.currency, 'saas_daily_metrics' as model,
        min({{ local_date('subscriptions.started_at', 'workspaces.timezone') }}) as first_day
    from {{ ref('stg_stripe__subscriptions') }} as subscriptions
    inner join workspaces on workspaces.workspace_id = subscriptions.workspace_id
    group by subscriptions.workspace_id, subscriptions.currency
),

gaps as (
    select
        needs.workspace_id,
        needs.model,
        needs.currency,
        workspaces.reporting_currency,
        needs.first_day,
        case when from_rates.first_day is null or from_rates.first_day > needs.first_day
            then needs.currency else workspaces.reporting_currency end as missing_currency
    from needs
    inner join workspaces on workspaces.workspace_id = needs.workspace_id
    left join rates as from_rates on from_rates.currency = needs.currency
    left join rates as to_rates on to_rates.currency = workspaces.reporting_currency
    where needs.currency <> workspaces.reporting_currency
        and (from_rates.first_day is null or from_rates.first_day > needs.first_day
            or to_rates.first_day is null or to_rates.first_day > needs.first_day)
),

final as (
    select
        workspace_id,
        model,
        currency,
        reporting_currency,
        first_day,
        missing_currency,
        'no FX rate for ' || missing_currency || ' on ' || cast(first_day as varchar)
            || ' (to convert ' || currency || ' into the reporting currency ' || reporting_currency
            || ' for ' || model || '): add ' || missing_currency || ' rates from that day to the file named by '
            || 'ABOS_FX_RATES_FILE (docs/configuration.md), or set the workspace''s currency to '
            || currency as reason
    from gaps
)

select * from final
