{#- insights.forecasts, as the insights stage writes it (pipelines/insights/assets.py, `forecasts`;
    the column types Warehouse.upsert gives those columns), created empty when it does not exist yet:
    dbt builds the view forecast_metrics before the first forecast is made. The stage's writes then
    go into this table, and the view reads them as they are. -#}
{% macro insights_forecasts_table() -%}
    create table if not exists insights.forecasts (
        workspace_id text,
        metric text,
        origin date,
        date date,
        days_ahead bigint,
        forecast double precision,
        lower_80 double precision,
        upper_80 double precision,
        lower_95 double precision,
        upper_95 double precision,
        made_at timestamp with time zone
    )
{%- endmacro %}
