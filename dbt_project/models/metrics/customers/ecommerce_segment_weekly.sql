{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ segment_rows_delete('ecommerce_segment_weekly') }}"
) }}
{#- RFM segments over time: one row per workspace, week and segment with its customers, their net
    sales in the week and to date, and how many came in from another segment (or as first-time
    buyers) since the week before.

    Incremental by week (macros/incremental_segments.sql): a run rebuilds the weeks the
    segments rebuilt and the window's first week. -#}
with segments as (
    select * from {{ ref('ecommerce_customer_segments') }} as segments
    {%- if is_incremental() %}
    where {{ segment_rows_condition('ecommerce_segment_weekly', 'segments', column='week_start') }}
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
        segments.segment,
        cast(count(*) as bigint) as customers,
        cast(sum(segments.week_net_sales) as decimal(38, 4)) as week_net_sales,
        cast(sum(segments.monetary) as decimal(38, 4)) as lifetime_net_sales,
        -- the window's first week has no week before it to move from
        cast(case when segments.week_start = first_weeks.first_week then null else sum(
            case when segments.previous_segment is null or segments.previous_segment <> segments.segment then 1 else 0 end
        ) end as bigint) as customers_moved_in
    from segments
    inner join first_weeks on first_weeks.workspace_id = segments.workspace_id
    group by segments.workspace_id, segments.week_start, segments.segment, first_weeks.first_week
)

select * from final
