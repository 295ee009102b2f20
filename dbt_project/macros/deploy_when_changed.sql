{#- Relations deployed only when their definition changed (docs/performance.md, "Views and the
    calendar deployed only when they change, DuckDB tables replaced in one statement").

    A view holds no data: re-creating one whose `create view` statement is the same as the
    deployed one changes nothing, yet cost every refresh a create, two renames, a drop and a commit
    per view (31 staging and quarantine views). So the view materialization below fingerprints the
    statement it would run (the compiled SQL with the relation's name, and the grants) and keeps
    the deployed view when the view in the warehouse carries the same fingerprint, stored as its
    comment when it was created. The fingerprint is of the *compiled* SQL, so whatever changes it
    is seen: a model's or macro's change, and the warehouse's own shape (`conformed_source` compiles
    to an empty stand-in while a raw table is missing and to the table once it exists). A relation
    that is missing, was dropped (a Postgres `drop ... cascade`), is another kind of relation, or has
    no or another comment is deployed as before; so is every one under `--full-refresh`, and any
    with persisted docs (its comment is the docs'). A kept relation still runs its hooks. The run's result says 'unchanged' for
    a relation kept.

    A table whose rows come from its SQL alone (no ref, no source: `int_days`, the calendar) is the
    same: with `deploy_when_changed: true` it is kept while its create statement is unchanged.
    Other tables build as before. -#}

{% materialization view, default %}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set fingerprint = deploy_fingerprint(get_create_view_as_sql(target_relation, sql)) -%}
    {%- if _keepable() and deployed_fingerprint(target_relation) == fingerprint -%}
        {{- return(_kept(target_relation)) -}}
    {%- endif -%}
    {%- set deployed = dbt.materialization_view_default() -%}
    {%- do _sign(target_relation, fingerprint) -%}
    {{- return(deployed) -}}
{% endmaterialization %}


{% materialization table, adapter='duckdb', supported_languages=['sql', 'python'] %}
    {{- return(_table_deployed_when_changed(duckdb__table_replaced)) -}}
{% endmaterialization %}

{#- A DuckDB table rebuilt in one statement, `create or replace table ... as`, inside the model's
    transaction: what dbt-duckdb's table materialization does with a create under a temporary
    name, two renames, a drop and their catalog look-ups (foreign keys, indexes): about six
    statements fewer per table, which at small scales are a visible share of a refresh's CPU
    (docs/performance.md). DuckDB
    replaces the table atomically at commit, and its views bind by name, so nothing that read the
    old table is left behind. Anything else (python models, contracts, constraints, indexes,
    partitioning or sorting, persisted docs, DuckLake, a view or other relation in the table's
    place) takes dbt-duckdb's own path. -#}
{% macro duckdb__table_replaced() %}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set simple = model.language == 'sql'
        and not config.get('contract').enforced
        and not model.get('constraints')
        and not config.get('indexes') and not config.get('partitioned_by') and not config.get('sorted_by')
        and not _persists_docs()
        and not adapter.is_ducklake(target_relation)
        and (existing_relation is none or existing_relation.is_table) -%}
    {%- if not simple -%}
        {{- return(dbt.materialization_table_duckdb()) -}}
    {%- endif -%}
    {%- set grant_config = config.get('grants') -%}
    {{- run_hooks(pre_hooks, inside_transaction=False) -}}
    {{- run_hooks(pre_hooks, inside_transaction=True) -}}
    {%- call statement('main') -%}
        {%- set sql_header = config.get('sql_header', none) -%}
        {{ sql_header if sql_header is not none }}
        create or replace table {{ target_relation }} as (
            {{ sql }}
        );
    {%- endcall -%}
    {{- run_hooks(post_hooks, inside_transaction=True) -}}
    {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke(existing_relation, full_refresh_mode=True)) -%}
    {{- adapter.commit() -}}
    {{- run_hooks(post_hooks, inside_transaction=False) -}}
    {{- return({'relations': [target_relation]}) -}}
{% endmacro %}

{% materialization table, default %}
    {{- return(_table_deployed_when_changed(dbt.materialization_table_default)) -}}
{% endmaterialization %}

{% macro _table_deployed_when_changed(build) %}
    {%- if not config.get('deploy_when_changed', false) or model.language != 'sql' -%}
        {{- return(build()) -}}
    {%- endif -%}
    {%- if model.depends_on.nodes | length > 0 -%}
        {{- exceptions.raise_compiler_error(
            "deploy_when_changed is for tables whose rows come from their SQL alone; " ~ model.name
            ~ " reads " ~ model.depends_on.nodes | join(', ')) -}}
    {%- endif -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set fingerprint = deploy_fingerprint(get_create_table_as_sql(false, target_relation, sql)) -%}
    {%- if _keepable() and deployed_fingerprint(target_relation) == fingerprint -%}
        {{- return(_kept(target_relation)) -}}
    {%- endif -%}
    {%- set deployed = build() -%}
    {%- do _sign(target_relation, fingerprint) -%}
    {{- return(deployed) -}}
{% endmacro %}


{#- What a relation is deployed from: its create statement and grants, under a versioned prefix (a
    change of this macro's prefix deploys every such relation once). -#}
{% macro deploy_fingerprint(create_statement) %}
    {{- return('abos-deploy-v1:' ~ local_md5(create_statement ~ '|' ~ tojson(config.get('grants') or {}))) -}}
{% endmacro %}

{% macro _persists_docs() %}
    {{- return((config.get('persist_docs') or {}).get('relation', false)) -}}
{% endmacro %}

{% macro _keepable() %}
    {{- return(not should_full_refresh() and not _persists_docs()) -}}
{% endmacro %}

{#- A relation kept as deployed still runs its hooks, as a deployed one would: they may depend on more
    than its SQL (the analysts' policies of `workspace_isolation`, Postgres' statistics). -#}
{% macro _kept(relation) %}
    {{- run_hooks(pre_hooks, inside_transaction=False) -}}
    {%- call statement('kept', auto_begin=True) -%} select 1 {%- endcall -%}  {#- the transaction the hooks and the commit need #}
    {{- run_hooks(pre_hooks, inside_transaction=True) -}}
    {%- do store_raw_result('main', message='unchanged', code='unchanged', rows_affected=none) -%}
    {{- run_hooks(post_hooks, inside_transaction=True) -}}
    {{- adapter.commit() -}}
    {{- run_hooks(post_hooks, inside_transaction=False) -}}
    {{- return({'relations': [relation]}) -}}
{% endmacro %}

{% macro _sign(relation, fingerprint) %}
    {%- if not _persists_docs() -%}
        {%- call statement('deploy_fingerprint') -%}
            comment on {{ relation.type }} {{ relation }} is '{{ fingerprint }}'
        {%- endcall -%}
        {%- do adapter.commit() -%}
    {%- endif -%}
{% endmacro %}


{#- The comment of the view or table `relation` in the warehouse; none when there is no such relation
    of that kind. -#}
{% macro deployed_fingerprint(relation) %}
    {{- return(adapter.dispatch('deployed_fingerprint')(relation)) -}}
{% endmacro %}

{% macro duckdb__deployed_fingerprint(relation) %}
    {%- set kind = 'view' if relation.type == 'view' else 'table' -%}
    {%- set query -%}
        select comment from duckdb_{{ kind }}s()
        where database_name = '{{ relation.database }}' and schema_name = '{{ relation.schema }}'
            and {{ kind }}_name = '{{ relation.identifier }}'
    {%- endset -%}
    {{- return(_first_value(run_query(query))) -}}
{% endmacro %}

{% macro postgres__deployed_fingerprint(relation) %}
    {%- set query -%}
        select obj_description(c.oid, 'pg_class')
        from pg_class as c
        inner join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = '{{ relation.schema }}' and c.relname = '{{ relation.identifier }}'
            and c.relkind = '{{ "v" if relation.type == "view" else "r" }}'
    {%- endset -%}
    {{- return(_first_value(run_query(query))) -}}
{% endmacro %}

{% macro default__deployed_fingerprint(relation) %}
    {{- return(none) -}}
{% endmacro %}

{% macro _first_value(table) %}
    {{- return(table.rows[0][0] if table.rows | length > 0 else none) -}}
{% endmacro %}
