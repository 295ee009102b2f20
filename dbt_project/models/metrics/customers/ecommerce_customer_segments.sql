{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=segment_weeks_index('ecommerce_customer_segments'),
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
    spread over the weeks until the next, not summed again for every week. The scores come from four
    thresholds per workspace, week and measure, counted from those changes (below), and the previous
    segment from the week before's thresholds and the person's figures then: no sort or window over
    the person-weeks (docs/performance.md, "The segments scored from counts"), and per person-week
    only what differs by week: the stored amounts are rounded per change (docs/performance.md, "The
    segments' per-row work in the full `dbt build`").

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

-- R, F and M change only in those weeks: each one's figures to its end, which hold until the next,
-- and the figures before it (the person's week before, when they had a row then)
changes as (
    select
        workspace_id,
        person_id,
        week_start,
        lead(week_start) over by_person as next_week_start,
        max(last_order_date) over to_date as last_order_date,
        cast(sum(orders) over to_date as bigint) as frequency,
        sum(net_sales) over to_date as monetary,
        lag(week_start) over by_person as previous_change,
        max(last_order_date) over before as previous_last_order_date,
        cast(sum(orders) over before as bigint) as previous_frequency,
        sum(net_sales) over before as previous_monetary,
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
        to_date as (by_person rows unbounded preceding),
        before as (by_person rows between unbounded preceding and 1 preceding)
),

{%- if is_incremental() %}

-- the week before the first one built, as the table holds it: the previous segments of that week
kept_weeks as (
    select kept.workspace_id, kept.person_id, kept.segment, first_weeks.from_week
    from {{ this }} as kept
    inner join first_weeks
        on first_weeks.workspace_id = kept.workspace_id
        and kept.week_start = cast({{ dbt.dateadd('week', -1, 'first_weeks.from_week') }} as date)
    where first_weeks.from_week > first_weeks.first_week
    {%- set grouped = segment_week_groups() %}
    {%- if grouped is not none %}
        -- the same weeks as constants, a filter the scan applies (macros/incremental_segments.sql)
        and ({% call(refresh_from, first_week) segment_week_any('kept', grouped) -%}
            kept.week_start = {{ segment_week_literal(refresh_from, -1) }}
        {%- endcall %})
    {%- endif %}
),
{%- endif %}

-- someone whose only orders were refunded in full still has a last order; no order at all: no row.
-- Incremental, a person's change in the first week built takes the previous segment the table holds
scored_changes as (
    select
        changes.*,
        -- the stored amounts, rounded once per change rather than once per person-week
        cast(changes.monetary as decimal(38, 4)) as stored_monetary,
        {%- for measure in ['week_net_sales', 'week_reporting_net_sales'] %}
        cast(changes.{{ measure }} as decimal(38, 4)) as stored_{{ measure }},
        {%- endfor %}
        {%- if is_incremental() %}
        kept_weeks.segment as kept_previous_segment
        {%- else %}
        cast(null as {{ dbt.type_string() }}) as kept_previous_segment
        {%- endif %}
    from changes
    {%- if is_incremental() %}
    left join kept_weeks
        on kept_weeks.workspace_id = changes.workspace_id
        and kept_weeks.person_id = changes.person_id
        and kept_weeks.from_week = changes.week_start
    {%- endif %}
    where changes.last_order_date is not null
),

{#- Quintiles from counts. The score of a value v in its workspace and week is
    least(5, 1 + floor(5 × percent_rank)), percent_rank = below / (n − 1): `below` customers of the
    week have a lower value (ties share it), n have a row (percent_rank 0 when n = 1). So the score
    is 1 + the number of k in 1..4 with 5 × below ≥ k × (n − 1) (exact: the double division and
    product give k itself when 5 × below = k × (n − 1)), and as `below` grows with v, that holds for
    the values above the one at which 5 × (customers up to that value) first reaches k × (n − 1): the
    week's threshold k. Four thresholds per week and measure, from each value's customers; a
    customer-week is then scored by comparing, with no sort or join over customer-weeks. None of
    the three measures is null (a last order by the snapshot, a count, a sum of amounts that are
    never null). #}
{%- set measures = [('r', 'last_order_date'), ('f', 'frequency'), ('m', 'monetary')] %}
{%- for score, measure in measures %}

-- the customers of each value in each week: the changes with the same value and weeks counted once,
-- then spread over those weeks
{{ score }}_counted as (
    select snapshots.workspace_id, snapshots.week_start, spans.value, sum(spans.customers) as customers
    from (
        select workspace_id, week_start, next_week_start, {{ measure }} as value, count(*) as customers
        from scored_changes
        group by workspace_id, week_start, next_week_start, {{ measure }}
    ) as spans
    inner join snapshots
        on snapshots.workspace_id = spans.workspace_id
        and snapshots.week_start >= spans.week_start
        and (spans.next_week_start is null or snapshots.week_start < spans.next_week_start)
    group by snapshots.workspace_id, snapshots.week_start, spans.value
),

-- the customers up to each value of a week: one running sum through every week in turn (cheaper
-- than a running sum per week: one sort, no partitions), less the weeks before it (below)
{{ score }}_cumulated as materialized (
    select
        workspace_id,
        week_start,
        value,
        sum(customers) over (order by workspace_id, week_start, value rows unbounded preceding)
            as customers_through_value
    from {{ score }}_counted
),

-- per week, the customers through its last value, and through the week before's (0 for the first)
{{ score }}_weeks as (
    select
        workspace_id,
        week_start,
        customers_through_week,
        coalesce(lag(customers_through_week) over (order by workspace_id, week_start), 0) as customers_before
    from (
        select workspace_id, week_start, max(customers_through_value) as customers_through_week
        from {{ score }}_cumulated
        group by workspace_id, week_start
    ) as weeks
),

{{ score }}_thresholds as (
    select
        cumulated.workspace_id,
        cumulated.week_start,
        {%- for k in range(1, 5) %}
        min(case
            when 5 * (cumulated.customers_through_value - weeks.customers_before)
                >= {{ k }} * (weeks.customers_through_week - weeks.customers_before - 1)
            then cumulated.value
        end) as {{ score }}{{ k }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ score }}_cumulated as cumulated
    inner join {{ score }}_weeks as weeks
        on weeks.workspace_id = cumulated.workspace_id
        and weeks.week_start = cumulated.week_start
    group by cumulated.workspace_id, cumulated.week_start
),
{%- endfor %}

-- every week's snapshot with its thresholds and the week before's (materialized: Postgres would
-- otherwise join the customers' changes to one threshold table by workspace alone, then the rest)
thresholds as materialized (
    select
        snapshots.workspace_id,
        snapshots.week_start,
        snapshots.snapshot_date,
        {%- for score, measure in measures %}
        {%- for k in range(1, 5) %}
        {{ score }}_thresholds.{{ score }}{{ k }},
        previous_{{ score }}.{{ score }}{{ k }} as previous_{{ score }}{{ k }}
        {{- "," if not (loop.last and score == 'm') }}
        {%- endfor %}
        {%- endfor %}
    from snapshots
    {%- for score, measure in measures %}
    inner join {{ score }}_thresholds
        on {{ score }}_thresholds.workspace_id = snapshots.workspace_id
        and {{ score }}_thresholds.week_start = snapshots.week_start
    left join {{ score }}_thresholds as previous_{{ score }}
        on previous_{{ score }}.workspace_id = snapshots.workspace_id
        and previous_{{ score }}.week_start = cast({{ dbt.dateadd('week', -1, 'snapshots.week_start') }} as date)
    {%- endfor %}
),

-- one row per person and week from their first change on; a week without one has no sales of its own.
-- The week before: the same figures in a week after the change, the previous change's in its week
-- (none if the person had no order by then, or no change before: their first week, or the first built)
scored as (
    select
        thresholds.workspace_id,
        thresholds.week_start,
        thresholds.snapshot_date,
        scored_changes.person_id,
        -- days since the last order: a difference of two dates is a whole number of days in both databases
        cast(thresholds.snapshot_date - scored_changes.last_order_date as integer) as recency_days,
        scored_changes.frequency,
        scored_changes.stored_monetary as monetary,
        {%- for measure in ['week_net_sales', 'week_reporting_net_sales'] %}
        case
            when thresholds.week_start = scored_changes.week_start then scored_changes.stored_{{ measure }}
            else cast(0 as decimal(38, 4))
        end as {{ measure }},
        {%- endfor %}
        {%- for score, measure in measures %}
        cast(1
            {%- for k in range(1, 5) %} + case when scored_changes.{{ measure }} > thresholds.{{ score }}{{ k }} then 1 else 0 end{% endfor %}
            as integer) as {{ score }}_score,
        {%- endfor %}
        {%- for score, measure in measures %}
        cast(case
            when thresholds.week_start > scored_changes.week_start then 1
            {%- for k in range(1, 5) %} + case when scored_changes.{{ measure }} > thresholds.previous_{{ score }}{{ k }} then 1 else 0 end{% endfor %}
            when scored_changes.previous_change is not null and scored_changes.previous_last_order_date is not null then 1
            {%- for k in range(1, 5) %} + case when scored_changes.previous_{{ measure }} > thresholds.previous_{{ score }}{{ k }} then 1 else 0 end{% endfor %}
        end as integer) as previous_{{ score }}_score,
        {%- endfor %}
        case
            when thresholds.week_start > scored_changes.week_start then scored_changes.frequency
            else scored_changes.previous_frequency
        end as previous_frequency,
        case when thresholds.week_start = scored_changes.week_start then scored_changes.kept_previous_segment end
            as kept_previous_segment
    from scored_changes
    inner join thresholds
        on thresholds.workspace_id = scored_changes.workspace_id
        and thresholds.week_start >= scored_changes.week_start
        and (scored_changes.next_week_start is null or thresholds.week_start < scored_changes.next_week_start)
),

segmented as (
    select
        *,
        {%- for prefix in ['', 'previous_'] %}
        case
            when {{ prefix }}r_score is null then null
            when {{ prefix }}r_score >= 4 and {{ prefix }}f_score + {{ prefix }}m_score >= 8 then 'champions'
            when {{ prefix }}r_score >= 4 and {{ prefix }}frequency = 1 then 'new'
            when {{ prefix }}r_score >= 3 and {{ prefix }}f_score + {{ prefix }}m_score >= 6 then 'loyal'
            when {{ prefix }}r_score >= 4 then 'promising'
            when {{ prefix }}r_score <= 2 and {{ prefix }}f_score + {{ prefix }}m_score >= 6 then 'at_risk'
            when {{ prefix }}r_score = 3 then 'needs_attention'
            else 'hibernating'
        end as {{ prefix }}segment
        {{- "," if not loop.last }}
        {%- endfor %}
    from scored
),

final as (
    select
        segmented.workspace_id,
        segmented.week_start,
        segmented.snapshot_date,
        segmented.person_id,
        segmented.recency_days,
        segmented.frequency,
        segmented.monetary,
        segmented.week_net_sales,
        segmented.week_reporting_net_sales,
        segmented.r_score,
        segmented.f_score,
        segmented.m_score,
        segmented.segment,
        -- the first week built: the previous segment the table holds (the window's first week: none)
        coalesce(segmented.previous_segment, segmented.kept_previous_segment) as previous_segment
    from segmented
)

select * from final
{%- if segment_weeks_index('ecommerce_customer_segments') %}
-- Postgres: written week by week, so each week's rows sit on pages of their own and the index on
-- the weeks reads only those pages (segment_weeks_index, macros/incremental_segments.sql)
order by week_start, workspace_id
{%- endif %}
