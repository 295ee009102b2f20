{#- Week-over-week RFM segment moves: one row per workspace, week and (from, to) pair of segments
    that differ. from_segment is null for first-time buyers. The window's first week is left out:
    nothing before it was scored. -#}
with segments as (
    select * from {{ ref('ecommerce_customer_segments') }}
),

first_weeks as (
    select workspace_id, min(week_start) as first_week
    from segments
    group by workspace_id
),

final as (
    select
        segments.workspace_id,
        segments.week_start,
        segments.previous_segment as from_segment,
        segments.segment as to_segment,
        cast(count(*) as bigint) as customers,
        cast(sum(segments.monetary) as decimal(38, 4)) as lifetime_net_sales
    from segments
    inner join first_weeks on first_weeks.workspace_id = segments.workspace_id
    where segments.week_start > first_weeks.first_week
        and (segments.previous_segment is null or segments.previous_segment <> segments.segment)
    group by segments.workspace_id, segments.week_start, segments.previous_segment, segments.segment
)

select * from final
