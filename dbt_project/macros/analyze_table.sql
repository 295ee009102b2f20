{#- Post-hook of every model (Postgres): ANALYZE the table dbt just built, so the models and tests
    that read it next are planned with its real row counts and value distributions. Postgres keeps
    no statistics for a table created in the same run until autovacuum gets to it, and without them
    it estimates a join of composite keys at a row or two and picks nested loops: on the large
    sandbox's fraction 0.02, int_subscription_mrr_rebuilt took 50 s instead of 1 (docs/performance.md,
    "Postgres against DuckDB"). Views have no statistics of their own; DuckDB needs none. -#}
{% macro analyze_table() -%}
    {%- if target.type == 'postgres' and model.config.materialized in ['table', 'incremental'] -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
