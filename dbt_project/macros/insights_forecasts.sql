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
        made_at timestamp with time zone,
        inputs_digest text
    )
{%- endmacro %}

{#- Postgres: analysts read metrics.forecast_metrics with their own rights (a security_invoker view,
    workspace_isolation), so they need SELECT on insights.forecasts, under the same per-workspace
    policy as the tables of `metrics`, once `abos analyst grant` has created the access objects
    (pipelines/transform/access.py, READ_BY_VIEWS, does the same when it runs later). -#}
{% macro insights_forecasts_access() -%}
    {%- if target.type == 'postgres' -%}
        do $$ begin
            if to_regprocedure('reference.apply_workspace_policy(regclass)') is not null then
                perform reference.apply_workspace_policy('insights.forecasts'::regclass);
                grant usage on schema insights to abos_analysts;
                grant select on insights.forecasts to abos_analysts;
            end if;
        end $$


    {%- endif -%}
{%- endmacro %}
