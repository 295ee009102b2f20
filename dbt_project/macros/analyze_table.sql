{#- Post-hook of every model (Postgres): ANALYZE the table dbt just built, so the models and tests
    that read it next are planned with its real row counts and value distributions. Postgres keeps
    no statistics for a table created in the same run until autovacuum gets to it, and without them
    it estimates a join of composite keys at a row or two and picks nested loops: on the large
    sandbox's fraction 0.02, int_subscription_mrr_rebuilt took 50 s instead of 1 (docs/performance.md,
    "Postgres against DuckDB"). Views have no statistics of their own; DuckDB needs none.

    An incremental model's run that changed few of its rows (an incremental run after a small
    change) keeps the statistics it has: it is analyzed as autovacuum's rule would analyze it, when
    it never was (`reltuples` < 0) or the rows inserted, updated and deleted since its last analyze
    exceed 50 plus a tenth of its rows (`analyze_when_changed`). Each ANALYZE reads a sample of
    30,000 pages, most of a large table's CPU after a small change (docs/performance.md, "Postgres
    after a small change: the statistics of the tables that barely changed"). A table (re)built
    whole, a first build and a full refresh are analyzed as before. -#}
{% macro analyze_table() -%}
    {%- if target.type == 'postgres' and model.config.materialized == 'table' -%}
        analyze {{ this }}
    {%- elif target.type == 'postgres' and model.config.materialized == 'incremental' -%}
        {{ analyze_when_changed(this) }}
    {%- endif -%}
{%- endmacro %}

{#- ANALYZE `relation` when autovacuum's analyze rule (threshold 50, scale factor 0.1) says so: the
    changes counted since its last analyze (`n_mod_since_analyze`, committed and reported) plus this
    session's not yet reported (`pg_stat_xact_user_tables`: this run's own insert, update and delete,
    which run in the hook's transaction) against `reltuples` at that analyze. A table never analyzed
    has `reltuples` -1. Counting a change twice only analyzes once more. The counters are trusted
    only while they know of an analyze of the table: a crash of the server, `pg_stat_reset()` or a
    copy of the database (`createdb -T`) loses them with `last_analyze`, and the table is analyzed
    as before. Without that, a copy's `int_ecommerce_changes` kept the 503,220 rows of its last
    analyze after the run's end hook had emptied it, and the cohort activity's delete, planned with
    that estimate as a subplan run per row, took minutes instead of 0.6 s (docs/performance.md). -#}
{% macro analyze_when_changed(relation) -%}
    do $$ begin
        if (select c.reltuples < 0 or s.relid is null
                or (s.last_analyze is null and s.last_autoanalyze is null)
                or coalesce(s.n_mod_since_analyze, 0) + coalesce(x.n_tup_ins + x.n_tup_upd + x.n_tup_del, 0)
                    > 50 + 0.1 * c.reltuples
            from pg_class as c
            left join pg_stat_user_tables as s on s.relid = c.oid
            left join pg_stat_xact_user_tables as x on x.relid = c.oid
            where c.oid = '{{ relation }}'::regclass) then
            analyze {{ relation }};
        end if;
    end $$
{%- endmacro %}
