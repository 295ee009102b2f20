{#- RFM segments of ecommerce customers, one row per workspace, week and customer who had ordered by
    the week's snapshot day (docs/metrics.md, "RFM segments"). Weeks start on Monday in the shop's
    timezone; a week's snapshot is its Sunday, or the workspace's last data day for the current
    week. The last `rfm_weeks` (default 26) weeks are kept. Scores are quintiles within the
    workspace and week: 1 + floor(5 × percent_rank), capped at 5, so tied customers share a score.
    Amounts are in the shop's currency, but week_reporting_net_sales: the week's net sales in the
    reporting currency, each order and refund at its day's rate (the registry's segment money).
    R, F and M change only in weeks with an order or refund: they are totalled over those weeks and
    spread over the weeks until the next, not summed again for every week. -#}
with recursive workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

customers as (
    select * from {{ ref('customers') }}
),

orders as (
    select * from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

last_days as (
    select workspace_id, max(date) as last_day
    from {{ ref('ecommerce_daily_metrics') }}
    group by workspace_id
),

first_weeks as (
    select
        last_days.workspace_id,
        last_days.last_day,
        cast({{ dbt.date_trunc('week', 'last_days.last_day') }} as date) as last_week,
        greatest(
            cast({{ dbt.dateadd('week', -1 * (var('rfm_weeks', 26) - 1), dbt.date_trunc('week', 'last_days.last_day')) }} as date),
            cast({{ dbt.date_trunc('week', 'min(customers.first_order_date)') }} as date)
        ) as first_week
    from last_days
    inner join customers on customers.workspace_id = last_days.workspace_id
    group by last_days.workspace_id, last_days.last_day
),

weeks (workspace_id, week_start, last_week, last_day) as (
    select workspace_id, first_week, last_week, last_day
    from first_weeks
    union all
    select workspace_id, cast({{ dbt.dateadd('week', 1, 'week_start') }} as date), last_week, last_day
    from weeks
    where week_start < last_week
),

snapshots as (
    select
        workspace_id,
        week_start,
        least(cast({{ dbt.dateadd('day', 6, 'week_start') }} as date), last_day) as snapshot_date
    from weeks
),

-- sold orders (+) and refunds (−) per person and local day: what R, F and M are made of
dated as (
    select workspace_id, person_id, order_date as date, currency, 1 as orders, discounted_sales as net_sales
    from orders
    where not is_cancelled
    union all
    select workspace_id, person_id, refund_date as date, currency, 0 as orders, -refunded_sales as net_sales
    from refunds
    where person_id is not null
),

-- and in the reporting currency (a missing rate: null, and the workspace has no segment metrics)
money as (
    select
        dated.workspace_id,
        dated.person_id,
        dated.date,
        dated.orders,
        dated.net_sales,
        {{ fx_convert('dated.net_sales', 'dated.currency', 'workspaces.reporting_currency', 4) }} as reporting_net_sales
    from dated
    inner join workspaces on workspaces.workspace_id = dated.workspace_id
    {{ fx_rate_joins('dated.date', 'dated.currency', 'workspaces.reporting_currency') }}
),

-- each person's orders and refunds by week: the week they fall in, or the first week for earlier ones
person_weeks as (
    select
        money.workspace_id,
        money.person_id,
        greatest(cast({{ dbt.date_trunc('week', 'money.date') }} as date), first_weeks.first_week) as week_start,
        max(case when money.orders = 1 then money.date end) as last_order_date,
        sum(money.orders) as orders,
        sum(money.net_sales) as net_sales,
        {%- for measure in ['net_sales', 'reporting_net_sales'] %}
        sum(case when money.date >= first_weeks.first_week then money.{{ measure }} else 0 end) as week_{{ measure }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from money
    inner join first_weeks on first_weeks.workspace_id = money.workspace_id
    where money.date <= first_weeks.last_day
    group by money.workspace_id, money.person_id,
        greatest(cast({{ dbt.date_trunc('week', 'money.date') }} as date), first_weeks.first_week)
),

-- R, F and M change only in those weeks: each one's figures to its end, which hold until the next
changes as (
    select
        workspace_id,
        person_id,
        week_start,
        lead(week_start) over by_person as next_week_start,
        max(last_order_date) over to_date as last_order_date,
        cast(sum(orders) over to_date as bigint) as frequency,
        sum(net_sales) over to_date as monetary,
        -- a week's sum runs over the person's rows to date, earlier ones counting 0: once there are
        -- earlier rows, a week whose own amounts are all null (a missing rate) sums to 0, not null
        {%- for measure in ['week_net_sales', 'week_reporting_net_sales'] %}
        case when lag(week_start) over by_person is null then {{ measure }} else coalesce({{ measure }}, 0) end
            as {{ measure }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from person_weeks
    window
        by_person as (partition by workspace_id, person_id order by week_start),
        to_date as (by_person rows unbounded preceding)
),

-- one row per person and week from their first change on; a week without one has no sales of its own
measured as (
    select
        snapshots.workspace_id,
        snapshots.week_start,
        snapshots.snapshot_date,
        changes.person_id,
        changes.last_order_date,
        changes.frequency,
        changes.monetary,
        case when snapshots.week_start = changes.week_start then changes.week_net_sales else 0 end
            as week_net_sales,
        case when snapshots.week_start = changes.week_start then changes.week_reporting_net_sales else 0 end
            as week_reporting_net_sales
    from changes
    inner join snapshots
        on snapshots.workspace_id = changes.workspace_id
        and snapshots.week_start >= changes.week_start
        and (changes.next_week_start is null or snapshots.week_start < changes.next_week_start)
    -- someone whose only orders were refunded in full still has a last order; no order at all: skip
    where changes.last_order_date is not null
),

scored as (
    select
        *,
        cast({{ dbt.datediff('last_order_date', 'snapshot_date', 'day') }} as integer) as recency_days,
        {%- for score, measure, direction in [('r_score', 'last_order_date', 'asc'),
                                               ('f_score', 'frequency', 'asc'),
                                               ('m_score', 'monetary', 'asc')] %}
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by workspace_id, week_start order by {{ measure }} {{ direction }}
        ))) as integer) as {{ score }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from measured
),

segmented as (
    select
        *,
        case
            when r_score >= 4 and f_score + m_score >= 8 then 'champions'
            when r_score >= 4 and frequency = 1 then 'new'
            when r_score >= 3 and f_score + m_score >= 6 then 'loyal'
            when r_score >= 4 then 'promising'
            when r_score <= 2 and f_score + m_score >= 6 then 'at_risk'
            when r_score = 3 then 'needs_attention'
            else 'hibernating'
        end as segment
    from scored
),

final as (
    select
        workspace_id,
        week_start,
        snapshot_date,
        person_id,
        recency_days,
        frequency,
        cast(monetary as decimal(38, 4)) as monetary,
        cast(week_net_sales as decimal(38, 4)) as week_net_sales,
        cast(week_reporting_net_sales as decimal(38, 4)) as week_reporting_net_sales,
        r_score,
        f_score,
        m_score,
        segment,
        lag(segment) over (partition by workspace_id, person_id order by week_start) as previous_segment
    from segmented
)

select * from final
