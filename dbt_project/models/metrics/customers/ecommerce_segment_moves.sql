{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ segment_rows_delete('ecommerce_segment_moves') }}"
) }}
{#- Week-over-week RFM segment moves: one row per workspace, week and (from, to) pair of segments
    that differ. from_segment is null for first-time buyers. The window's first week is left out:
    nothing before it was scored.

    Incremental by week (macros/incremental_segments.sql): a run rebuilds the weeks the
    segments rebuilt and the window's first week. -#}
with segments as (
    select * from {{ ref('ecommerce_customer_segments') }} as segments
    {%- if is_incremental() %}
    where {{ segment_rows_condition('ecommerce_segment_moves', 'segments', column='week_start') }}
    {%- endif %}
),

first_weeks as (
    select workspace_id, first_week
    from {{ ref('int_ecommerce_segment_weeks') }}
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
