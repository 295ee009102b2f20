{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook=["{{ segment_rows_delete('ecommerce_customer_segments') }}", "{{ segment_first_week_update() }}"]
) }}
{#- RFM segments of ecommerce customers, one row per workspace, week and customer who had ordered by
    the week's snapshot day (docs/metrics.md, "RFM segments"). Weeks start on Monday in the shop's
    timezone; a week's snapshot is its Sunday, or the workspace's last data day for the current
    week. The last `rfm_weeks` (default 26) weeks are kept. Scores are quintiles within the
    workspace and week: 1 + floor(5 × percent_rank), capped at 5, so tied customers share a score.
    Amounts are in the shop's currency, but week_reporting_net_sales: the week's net sales in the
    reporting currency, each order and refund at its day's rate (the registry's segment money).
    R, F and M change only in weeks with an order or refund: they are totalled over those weeks and
    spread over the weeks until the next, not summed again for every week.

    Incremental by week (macros/incremental_segments.sql): a run rebuilds the weeks from the
    workspace's refresh_from (int_ecommerce_segment_weeks) on, with everyone's orders and refunds
    before it summed into that week, and takes the week before's segments from the table. -#}
with recursive workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

orders as (
    select * from {{ ref('orders') }}
),

refunds as (
    select * from {{ ref('refunds') }}
),

-- the weeks to build: from the first one (from refresh_from on, incremental; the rows before it are kept)
first_weeks as (
    select
        workspace_id,
        last_day,
        last_week,
        first_week,
        {{ 'refresh_from' if is_incremental() else 'first_week' }} as from_week
    from {{ ref('int_ecommerce_segment_weeks') }}
    {%- if is_incremental() %}
    where refresh_from <= last_week
    {%- endif %}
),

weeks (workspace_id, week_start, last_week, last_day) as (
    select workspace_id, from_week, last_week, last_day
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

-- sold orders (+) and refunds (−) per person and local day, in the shop's and the reporting currency:
-- what R, F and M are made of (a missing rate: null, and the workspace has no segment metrics)
{{ segment_money() }},

-- each person's orders and refunds by week: the week they fall in, or the first week built for earlier ones
person_weeks as (
    select
        money.workspace_id,
        money.person_id,
        greatest(cast({{ dbt.date_trunc('week', 'money.date') }} as date), first_weeks.from_week) as week_start,
        max(case when money.orders = 1 then money.date end) as last_order_date,
        sum(money.orders) as orders,
        sum(money.net_sales) as net_sales,
        {%- for measure in ['net_sales', 'reporting_net_sales'] %}
        sum(case when money.date >= first_weeks.from_week then money.{{ measure }} else 0 end) as week_{{ measure }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from money
    inner join first_weeks on first_weeks.workspace_id = money.workspace_id
    where money.date <= first_weeks.last_day
    group by money.workspace_id, money.person_id,
        greatest(cast({{ dbt.date_trunc('week', 'money.date') }} as date), first_weeks.from_week)
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

{%- if is_incremental() %}

-- the week before the first one built, as the table holds it: the previous segments of that week
kept_weeks as (
    select kept.workspace_id, kept.person_id, kept.segment
    from {{ this }} as kept
    inner join first_weeks
        on first_weeks.workspace_id = kept.workspace_id
        and kept.week_start = cast({{ dbt.dateadd('week', -1, 'first_weeks.from_week') }} as date)
    where first_weeks.from_week > first_weeks.first_week
),
{%- endif %}

final as (
    select
        segmented.workspace_id,
        segmented.week_start,
        segmented.snapshot_date,
        segmented.person_id,
        segmented.recency_days,
        segmented.frequency,
        cast(segmented.monetary as decimal(38, 4)) as monetary,
        cast(segmented.week_net_sales as decimal(38, 4)) as week_net_sales,
        cast(segmented.week_reporting_net_sales as decimal(38, 4)) as week_reporting_net_sales,
        segmented.r_score,
        segmented.f_score,
        segmented.m_score,
        segmented.segment,
        {%- if is_incremental() %}
        coalesce(
            lag(segmented.segment) over (partition by segmented.workspace_id, segmented.person_id order by segmented.week_start),
            kept_weeks.segment
        ) as previous_segment
    from segmented
    left join kept_weeks
        on kept_weeks.workspace_id = segmented.workspace_id
        and kept_weeks.person_id = segmented.person_id
        {%- else %}
        lag(segmented.segment) over (partition by segmented.workspace_id, segmented.person_id order by segmented.week_start)
            as previous_segment
    from segmented
        {%- endif %}
)

select * from final
