{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ segment_rows_delete('ecommerce_segment_metrics') }}"
) }}
{#- RFM segments as registry metrics (pipelines/packs/ecommerce.py): one row per workspace and scored
    week, dated on the week's snapshot day (its Sunday, or the last data day for the current week):
    the customers scored and their net sales within the week. ecommerce_segment_slices splits both
    by segment. A workspace missing an exchange rate has none: its weeks come from
    ecommerce_daily_metrics' days (ecommerce_customer_segments), which leave it out (has_fx_rates).

    Incremental by week (macros/incremental_segments.sql): a run rebuilds the weeks the
    segments rebuilt. -#}
-- depends_on: {{ ref('int_ecommerce_segment_weeks') }}
with segments as (
    select * from {{ ref('ecommerce_customer_segments') }} as segments
    {%- if is_incremental() %}
    where {{ segment_rows_condition('ecommerce_segment_metrics', 'segments', column='week_start') }}
    {%- endif %}
),

final as (
    select
        workspace_id,
        snapshot_date as date,
        cast(count(*) as bigint) as segment_customers,
        cast(sum(week_reporting_net_sales) as decimal(38, 4)) as segment_net_sales
    from segments
    group by workspace_id, snapshot_date
)

select * from final
