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
    after a small change: the statistics of the tables that barely changed"). So is a table kept while
    its SQL is unchanged (`deploy_when_changed`: the calendar), which a refresh does not touch. A table
    (re)built whole, a first build and a full refresh are analyzed as before. -#}
{% macro analyze_table() -%}
    {%- if target.type == 'postgres' and (model.config.materialized == 'incremental'
                                          or model.config.get('deploy_when_changed')) -%}
        {{ analyze_when_changed(this) }}
    {%- elif target.type == 'postgres' and model.config.materialized == 'table' -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}

{#- ANALYZE `relation` when autovacuum's analyze rule (threshold 50, scale factor 0.1) says so: the
    rows inserted, updated and deleted since its last analyze against `reltuples` at that analyze. A
    table never analyzed has `reltuples` -1.

    The changes since: the server's count (`n_mod_since_analyze`, committed and reported) plus this
    session's not yet reported (`pg_stat_xact_user_tables`: this run's own insert, update and delete,
    which run in the hook's transaction), less the changes the last analyze already saw. The server
    counts a transaction's changes when it commits, so those an ANALYZE in the same transaction sampled
    (this hook's: a build's rows, then its analyze) are counted again after it; without taking them
    off, the first incremental run after a full build analyzed every incremental table once more, and
    every run that analyzed made the next one likelier to (docs/performance.md, "Postgres after a
    change: the analyze rule, the pending loads' rows; the floor of a build after a change"). The hook
    records them (`analyzed_changes_relation`), keyed by the table and by its analyze count then, so a
    later analyze by anyone else (autovacuum, by hand) voids the record.

    The counters are trusted only while they know of an analyze of the table: a crash of the server,
    `pg_stat_reset()` or a copy of the database (`createdb -T`) loses them with `last_analyze` (and the
    analyze count the record holds), and the table is analyzed as before. Without that, a copy's
    `int_ecommerce_changes` kept the 503,220 rows of its last analyze after the run's end hook had
    emptied it, and the cohort activity's delete, planned with that estimate as a subplan run per row,
    took minutes instead of 0.6 s (docs/performance.md). -#}
{% macro analyze_when_changed(relation) -%}
    {%- set seen = analyzed_changes_relation() -%}
    do $$
    declare
        due boolean;
        analyzed bigint;  -- the table's analyze count once this analyze is done
        own bigint;  -- this transaction's changes to the table, which the analyze sees
    begin
        select c.reltuples < 0 or s.relid is null
                or (s.last_analyze is null and s.last_autoanalyze is null)
                or coalesce(s.n_mod_since_analyze, 0) - coalesce(seen.changes, 0)
                    + coalesce(x.n_tup_ins + x.n_tup_upd + x.n_tup_del, 0) > 50 + 0.1 * c.reltuples,
            coalesce(s.analyze_count + s.autoanalyze_count, 0) + 1,
            coalesce(x.n_tup_ins + x.n_tup_upd + x.n_tup_del, 0)
        into due, analyzed, own
        from pg_class as c
        left join pg_stat_user_tables as s on s.relid = c.oid
        left join pg_stat_xact_user_tables as x on x.relid = c.oid
        left join {{ seen }} as seen
            on seen.relid = c.oid and seen.analyze_count = s.analyze_count + s.autoanalyze_count
        where c.oid = '{{ relation }}'::regclass;
        if due then
            analyze {{ relation }};
            insert into {{ seen }} (relid, analyze_count, changes)
            values ('{{ relation }}'::regclass, analyzed, own)
            on conflict (relid) do update set analyze_count = excluded.analyze_count, changes = excluded.changes;
        end if;
    end $$
{%- endmacro %}

{#- Where `analyze_when_changed` records, per table (by oid), its analyze count after the hook's last
    ANALYZE of it and the changes that transaction had made before it: `intermediate.abos__analyzed`,
    with the other bookkeeping tables (their names hold `__`). -#}
{% macro analyzed_changes_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=generate_schema_name('intermediate', none),
                                  identifier='abos__analyzed', type='table')) }}
{%- endmacro %}

{#- on-run-start (Postgres, `dbt run` and `dbt build`): the table `analyze_when_changed` records into,
    made before any model's hook can need it. -#}
{% macro create_analyzed_changes() -%}
    {%- if execute and target.type == 'postgres' and flags.WHICH in ['run', 'build'] -%}
        {%- set seen = analyzed_changes_relation() -%}
        create schema if not exists {{ adapter.quote(seen.schema) }};
        create table if not exists {{ seen }} (relid oid primary key, analyze_count bigint not null, changes bigint not null)
    {%- endif -%}
{%- endmacro %}
