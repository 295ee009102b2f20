{#- Post-hook on marts and metrics (Postgres): re-apply the per-workspace row-level security policy
    to the table dbt just (re)built, once `abos analyst grant` has created the access objects
    (pipelines/transform/access.py holds the policy itself). On DuckDB there are no roles. -#}
{% macro workspace_isolation() -%}
    {%- if target.type == 'postgres' -%}
        do $$ begin
            if to_regprocedure('reference.apply_workspace_policy(regclass)') is not null then
                perform reference.apply_workspace_policy('{{ this }}'::regclass);
            end if;
        end $$
    {%- endif -%}
{%- endmacro %}
