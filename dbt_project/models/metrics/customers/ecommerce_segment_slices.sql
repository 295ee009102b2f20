{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ segment_rows_delete('ecommerce_segment_slices') }}"
) }}
{#- ecommerce_segment_metrics split by RFM segment, in the long form of the slice tables
    (workspace_id, date, metric, dimension, dimension_value, value); zero slices are left out.

    Incremental by week (macros/incremental_segments.sql): a run rebuilds the weeks the
    segments rebuilt. -#}
-- depends_on: {{ ref('int_ecommerce_segment_weeks') }}
with segments as (
    select * from {{ ref('ecommerce_customer_segments') }} as segments
    {%- if is_incremental() %}
    where {{ segment_rows_condition('ecommerce_segment_slices', 'segments', column='week_start') }}
    {%- endif %}
),

by_segment as (
    select
        workspace_id,
        snapshot_date as date,
        'segment' as dimension,
        segment as dimension_value,
        count(*) as segment_customers,
        sum(week_reporting_net_sales) as segment_net_sales
    from segments
    group by workspace_id, snapshot_date, segment
),

long_form as (
    {{ slices_long_form([
        ('by_segment', 'segment_customers', 'segment_customers', none),
        ('by_segment', 'segment_net_sales', 'segment_net_sales', none),
    ]) }}
),

final as (
    {{ kept_slices('long_form', 'ecommerce') }}
)

select * from final
