{#- Incremental by day (docs/performance.md, "Incremental by day"). The daily tables of a vertical
    (`refresh_tables(vertical)`) rebuild, per workspace, only the days from its `refresh_from`
    (int_<vertical>_refresh_windows) on, and keep the days before.

    How the day is found: int_<vertical>_day_digests fingerprints, per workspace and local day,
    every input row the daily tables read on that day (orders, lines, refunds; MRR change points,
    trials; the workspace's timezone and currency on 1900-01-01; the exchange rates under the
    workspace '*'). The on-run-end hook `record_refresh_state` keeps a copy of the digests the
    tables were last built from; the windows model compares the two, so a load that changed an old
    day (a late refund, a subscription change in the past) rebuilds from that day, and a load that
    changed nothing rebuilds only the last built day (the as-of day moves). A workspace with no rows
    yet, or with a missing FX rate, rebuilds in full. `dbt build --full-refresh` rebuilds everything. -#}

{#- The tables each vertical refreshes by day: the hook records the state only when all of them (and
    the digests and windows) were built by the run, so a failed or partial run is caught up next time. -#}
{% macro refresh_tables(vertical) -%}
    {%- set tables = {
        'ecommerce': ['ecommerce_daily_metrics', 'ecommerce_daily_slices', 'ecommerce_daily_pair_slices'],
        'saas': ['int_saas_currency_days', 'int_saas_retention_daily', 'saas_daily_metrics', 'saas_daily_slices',
                 'saas_daily_pair_slices'],
    } -%}
    {{ return(tables[vertical]) }}
{%- endmacro %}

{#- The other models that rebuild rows by what the kept digests say changed (int_ecommerce_cohort_activity:
    its months from the refresh window's month on; mrr_movements: its days from the first changed
    exchange rate's, saas_rates_changed_from): the state is kept only when they were built too, so a
    run that built the daily tables but not them still has them rebuild those days. -#}
{% macro window_readers(vertical) -%}
    {{ return({'ecommerce': ['int_ecommerce_cohort_activity'], 'saas': ['mrr_movements']}[vertical]) }}
{%- endmacro %}

{#- Whether a vertical's daily rows are independent of each other: an ecommerce day sums that day's
    orders and refunds only, so a changed day is rebuilt alone (int_ecommerce_refresh_days); SaaS
    days carry running sums (MRR, active counts), so a change rebuilds every day after it. -#}
{% macro refresh_by_day(vertical) -%}
    {{ return(vertical == 'ecommerce') }}
{%- endmacro %}

{#- An order-independent fingerprint of rows: the sum of a 64-bit hash of each row's `columns`.
    Each database uses its own hash; digests are only ever compared within one warehouse. -#}
{% macro row_digest(columns) -%}
    {%- set text -%}
        concat_ws('|', {% for column in columns %}coalesce(cast({{ column }} as varchar), '~'){{ ", " if not loop.last }}{% endfor %})
    {%- endset -%}
    {%- if target.type == 'postgres' -%}
        cast(hashtextextended({{ text }}, 0) as decimal(38, 0))
    {%- else -%}
        cast(hash({{ text }}) as decimal(38, 0))
    {%- endif -%}
{%- endmacro %}

{#- The end of an int_<vertical>_day_digests model, after its CTEs, shared by both verticals: each
    workspace (the CTE named by `workspaces`: workspace_id, timezone, reporting_currency) gets a row
    on 1900-01-01 (a change rebuilds it in full), each exchange rate one on its first day under the
    workspace '*' (a change rebuilds every workspace from that day), and the vertical's own input
    rows come from the CTE named by `rows` (workspace_id, date_day, row_hash); a day's digest is the
    sum of its rows' hashes. -#}
{% macro day_digests(workspaces, rows) -%}
hashed as (
    select workspace_id, cast('1900-01-01' as date) as date_day,
        {{ row_digest(['timezone', 'reporting_currency']) }} as row_hash
    from {{ workspaces }}

    union all

    select '*' as workspace_id, valid_from as date_day,
        {{ row_digest(['currency', 'units_per_eur']) }} as row_hash
    from {{ ref('int_fx_rates_ranged') }}

    union all

    select workspace_id, date_day, row_hash
    from {{ rows }}
),

final as (
    select workspace_id, date_day, cast(sum(row_hash) as decimal(38, 0)) as digest
    from hashed
    group by workspace_id, date_day
)

select * from final
{%- endmacro %}

{#- The relation of a model by name, without a ref (for the refresh bookkeeping, which must not
    add edges to the DAG), or none when it has not been built yet. With `suffix`, the table of that
    name beside it (the bookkeeping's own tables); with `create`, that relation whether or not it
    exists yet (a table to create). -#}
{% macro model_relation(name, suffix='', create=false) -%}
    {%- set node = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', name) | first -%}
    {%- if create -%}
        {{ return(api.Relation.create(database=node.database, schema=node.schema,
                                      identifier=node.alias ~ suffix, type='table')) }}
    {%- endif -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias ~ suffix)) }}
{%- endmacro %}

{#- Where the digests the daily tables were last built from are kept: beside the digests, with the
    suffix __built. -#}
{% macro refresh_state_relation(vertical, create=false) -%}
    {{ return(model_relation('int_' ~ vertical ~ '_day_digests', '__built', create)) }}
{%- endmacro %}

{#- In a daily table's SQL: true for the rows to (re)build, `workspace_id`'s days from its refresh
    day on (minus `days_before`, for models that read back, e.g. a 30-day window), and for a vertical
    rebuilt by day its changed days before that (int_<vertical>_refresh_days); every row when the
    table is built in full. Postgres: the windows and changed days written in as constants
    (rebuilt_days_constants), read when the model runs: the condition's scalar subquery ran once for
    every row it filters, the orders mart's 1.1 M rows at scale 1 in each of three daily tables
    (docs/performance.md, "Postgres after a small change: two `or`s run once per row"). DuckDB
    decorrelates the subquery itself. -#}
{% macro refresh_days(vertical, workspace_id, day, days_before=0) -%}
    {%- if is_incremental() -%}
        {%- set windows = ref('int_' ~ vertical ~ '_refresh_windows') -%}
        {%- set changed_days = ref('int_' ~ vertical ~ '_refresh_days') if refresh_by_day(vertical) else none -%}
        {%- if target.type == 'postgres' and execute -%}
            {{ rebuilt_days_constants(workspace_id, day, windows, changed_days, days_before) }}
        {%- else -%}
            {{ rebuilt_days_condition(workspace_id, day, windows, changed_days, days_before) }}
        {%- endif -%}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#- The condition the three above share: `day` of `workspace_id` is rebuilt, by the `windows` and
    (when not none) the `changed_days` relations. -#}
{% macro rebuilt_days_condition(workspace_id, day, windows, changed_days, days_before=0) -%}
    ({{ day }} >= (
            select cast({{ dbt.dateadd('day', -1 * days_before, 'windows.refresh_from') }} as date)
            from {{ windows }} as windows
            where windows.workspace_id = {{ workspace_id }}
        )
        {%- if changed_days is not none %}
        or exists (
            select 1 from {{ changed_days }} as changed_days
            where changed_days.workspace_id = {{ workspace_id }}
                and changed_days.date_day = {{ day }}
        )
        {%- endif %})
{%- endmacro %}

{#- The pre-hook of a daily table: delete the days it is about to rebuild. Postgres: the windows
    joined (`using`), the changed days a hashed IN as in among_keys; the condition's scalar subquery
    scanned the windows once for every row of the table (the eight tables' deletes 4.3 → 0.7 CPU s
    at `large@0.1` size: docs/performance.md, "dbt after a small change: the order lines without
    every order"). The same rows: a workspace has one window (a second would make the scalar
    subquery fail), and no changed day without one. DuckDB decorrelates the condition itself. -#}
{% macro refresh_days_delete(vertical, day) -%}
    {%- if is_incremental() and target.type == 'postgres' -%}
        {%- set rows = this.identifier -%}
        delete from {{ this }}
        using {{ ref('int_' ~ vertical ~ '_refresh_windows') }} as windows
        where windows.workspace_id = {{ rows }}.workspace_id
            and ({{ rows }}.{{ day }} >= windows.refresh_from
            {%- if refresh_by_day(vertical) %}
                or ({{ rows }}.workspace_id, {{ rows }}.{{ day }}) in (
                    select changed_days.workspace_id, changed_days.date_day
                    from {{ ref('int_' ~ vertical ~ '_refresh_days') }} as changed_days)
            {%- endif %})
    {%- elif is_incremental() -%}
        delete from {{ this }}
        where {{ rebuilt_days_condition(this.identifier ~ '.workspace_id', day,
                                        ref('int_' ~ vertical ~ '_refresh_windows'),
                                        ref('int_' ~ vertical ~ '_refresh_days') if refresh_by_day(vertical) else none) }}
    {%- endif -%}
{%- endmacro %}

{#- on-run-end: for each vertical whose digests, windows and daily tables all succeeded in this
    run (and for the RFM segments, `ecommerce_segment`: their digests, weeks and tables), keep the digests they were built from (workspaces with a missing FX rate left out, so they
    rebuild in full once the rate is there). Only `dbt run` and `dbt build` build tables: `dbt
    compile` and `docs generate` run the hook too, with every node "successful". -#}
{% macro record_refresh_state(results) -%}
    {%- if execute and flags.WHICH in ['run', 'build'] -%}
        {%- set built = results | selectattr('status', 'equalto', 'success') | map(attribute='node.name') | list -%}
        {%- for vertical in ['ecommerce', 'saas', 'ecommerce_segment'] -%}
            {%- if vertical == 'ecommerce_segment' -%}
                {#- the RFM segments' own digests (macros/incremental_segments.sql) -#}
                {%- set needed = ['int_ecommerce_segment_day_digests', 'int_ecommerce_segment_weeks'] + segment_tables().keys() | list -%}
            {%- else -%}
                {%- set needed = ['int_' ~ vertical ~ '_day_digests', 'int_' ~ vertical ~ '_refresh_windows'] + refresh_tables(vertical)
                    + (['int_' ~ vertical ~ '_refresh_days'] if refresh_by_day(vertical) else [])
                    + window_readers(vertical) -%}
            {%- endif -%}
            {%- if needed | reject('in', built) | list | length == 0 -%}
                {%- set state = refresh_state_relation(vertical, create=true) -%}
                {%- do run_query('drop table if exists ' ~ state) -%}
                {%- do run_query('create table ' ~ state ~ ' as select * from ' ~ model_relation('int_' ~ vertical ~ '_day_digests')
                    ~ ' where workspace_id not in (select workspace_id from '
                    ~ model_relation('int_fx_rate_gaps_' ~ vertical.split('_')[0]) ~ ')') -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- CTEs (after `with`): `differing`, the workspaces and days whose digest differs from the one the
    daily tables were built from (new and vanished days too). -#}
{% macro differing_days(vertical) -%}
{%- set state = refresh_state_relation(vertical) if execute else none -%}
digests as (
    select * from {{ ref('int_' ~ vertical ~ '_day_digests') }}
),

built as (
    {%- if state is not none %}
    select workspace_id, date_day, digest from {{ state }}
    {%- else %}
    select workspace_id, date_day, digest from digests where 1 = 0
    {%- endif %}
),

differing as (
    select coalesce(digests.workspace_id, built.workspace_id) as workspace_id,
        coalesce(digests.date_day, built.date_day) as date_day
    from digests
    full outer join built
        on built.workspace_id = digests.workspace_id
        and built.date_day = digests.date_day
    where digests.digest is null or built.digest is null or digests.digest <> built.digest
)
{%- endmacro %}

{#- The body of int_<vertical>_refresh_windows: per workspace, the first day its daily tables must
    rebuild. The earliest of: the first day whose digest differs from the recorded one (for a
    vertical rebuilt by day, only when that day is before the first day the tables hold, which
    moves the workspace's first day: the other changed days are int_<vertical>_refresh_days); the exchange rates' first changed day, for every workspace; the earliest of the
    last days the daily tables hold for it (the as-of day moves on, and days may be added after
    it); 1900-01-01 (in full) for a workspace none of them holds, a new one (all its digests are
    new), one whose timezone or currency changed (their digest is on 1900-01-01), or one with a
    missing FX rate (its rows are all deleted). -#}
{% macro refresh_windows(vertical) -%}
with workspaces as (
    select workspace_id from {{ ref('stg_reference__workspaces') }}
),

{{ differing_days(vertical) }},

changed_days as (
    select workspace_id, min(date_day) as first_day
    from differing
    group by workspace_id
),

held_days as (
    {%- for table in refresh_tables(vertical) %}
    {%- set relation = model_relation(table) if execute else none %}
    select workspaces.workspace_id,
        {%- if relation is not none %}
        held.first_day,
        held.last_day
    from workspaces
    left join (
        select workspace_id,
            min({{ 'date_day' if table.startswith('int_') else 'date' }}) as first_day,
            max({{ 'date_day' if table.startswith('int_') else 'date' }}) as last_day
        from {{ relation }}
        group by workspace_id
    ) as held on held.workspace_id = workspaces.workspace_id
        {%- else %}
        cast(null as date) as first_day,
        cast(null as date) as last_day
    from workspaces
        {%- endif %}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

final as (
    select
        workspaces.workspace_id,
        cast(case
            when workspaces.workspace_id in (select workspace_id from {{ ref('int_fx_rate_gaps_' ~ vertical) }})
                then cast('1900-01-01' as date)
            else least(
                -- none of the tables holds the workspace: in full
                coalesce((select min(last_day) from held_days where held_days.workspace_id = workspaces.workspace_id),
                         cast('1900-01-01' as date)),
                coalesce((select changed_days.first_day from changed_days
                          where changed_days.workspace_id = workspaces.workspace_id
                          {%- if refresh_by_day(vertical) %}
                              -- before the first day held, the workspace's first day moves
                              and changed_days.first_day < (select max(held_days.first_day) from held_days
                                                            where held_days.workspace_id = workspaces.workspace_id)
                          {%- endif %}),
                         cast('9999-12-31' as date)),
                coalesce((select first_day from changed_days where changed_days.workspace_id = '*'),
                         cast('9999-12-31' as date))
            )
        end as date) as refresh_from
    from workspaces
)

select * from final
{%- endmacro %}

{#- The data tests of a daily table see only the days the run rebuilt (dbt calls this macro to wrap
    the tested model of every generic test; the project's version replaces dbt's own). On `dbt
    build` without --full-refresh, a test on one of `refresh_tables` reads the rows from each
    workspace's `refresh_from` (int_<vertical>_refresh_windows, as the table's build used it) on: the
    days before were tested when they were built and have not changed since. A first build has
    every workspace from 1900-01-01, and `dbt build --full-refresh` and `dbt test` read every row.
    The incremental marts' tests likewise read the rows the run rebuilt (macro
    rebuilt_rows_disjuncts), and the segment tables' tests the weeks the run rebuilt
    (segment_rebuilt_rows). A test's own `where` config still applies; a test with
    `meta: {reads_every_row: true}` in its config reads every row of a mart (a relationships test
    whose parent may lose keys without the mart's rows being rebuilt). -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set vertical = refreshed_vertical(relation) -%}
    {%- set windows = model_relation('int_' ~ vertical ~ '_refresh_windows') if vertical and execute else none -%}
    {%- if windows is not none and flags.WHICH == 'build' and not flags.FULL_REFRESH -%}
        {%- set day = 'date_day' if relation.identifier.startswith('int_') else 'date' -%}
        {%- set changed_days = model_relation('int_' ~ vertical ~ '_refresh_days') if refresh_by_day(vertical) else none -%}
        {%- set refreshed = rebuilt_days_constants('refreshed.workspace_id', 'refreshed.' ~ day, windows, changed_days) -%}
        {%- set where = '(' ~ where ~ ') and ' ~ refreshed if where else refreshed -%}
        {{ return('(select * from ' ~ relation ~ ' as refreshed where ' ~ where ~ ') dbt_subquery') }}
    {%- endif -%}
    {#- an incremental mart's tests read the rows the run rebuilt (macros/incremental_changes.sql), a
        segment table's the weeks it rebuilt (macros/incremental_segments.sql) -#}
    {%- set scoped = execute and flags.WHICH == 'build' and not flags.FULL_REFRESH and relation.schema is not none
        and not (config.get('meta') or {}).get('reads_every_row') -%}
    {%- set rebuilt = rebuilt_rows_disjuncts(relation) if scoped else none -%}
    {%- if rebuilt is none and scoped -%}
        {%- set segments = segment_rebuilt_rows(relation) -%}
        {%- set rebuilt = [segments] if segments is not none else none -%}
    {%- endif -%}
    {%- if rebuilt is not none -%}
        {%- set selected = 'select * from ' ~ relation ~ ' as refreshed where ' ~ ('(' ~ where ~ ') and ' if where else '') -%}
        {%- if target.type == 'postgres' and rebuilt | length > 1 -%}
            {#- Postgres: each condition in turn, without the rows an earlier one selected, one
                UNION ALL (the same rows, each once). Under an OR it cannot run an EXISTS as a
                semi-join, nor hash an IN whose keys exceed work_mem (a first build's change set
                holds every order): it ran the subquery again for each row, > 5 minutes for the
                test of `orders` at large@0.1 (docs/performance.md, "Postgres against DuckDB at
                large@0.1"). Alone, each is a hash semi-join, and NOT EXISTS an anti-join. -#}
            {%- set parts = [] -%}
            {%- for condition in rebuilt -%}
                {%- set ns = namespace(text=selected ~ condition) -%}
                {%- for earlier in rebuilt[:loop.index0] -%}
                    {%- set ns.text = ns.text ~ ' and not ' ~ earlier -%}
                {%- endfor -%}
                {%- do parts.append(ns.text) -%}
            {%- endfor -%}
            {{ return('(' ~ parts | join(' union all ') ~ ') dbt_subquery') }}
        {%- endif -%}
        {{ return('(' ~ selected ~ '(' ~ rebuilt | join(' or ') ~ ')) dbt_subquery') }}
    {%- endif -%}
    {{ return(dbt.default__get_where_subquery(relation)) }}
{%- endmacro %}

{#- rebuilt_days_condition for `workspace_id` and its `day` (column expressions), with the windows and
    changed days read when the caller runs and written in as constants: for a daily table's tests
    (get_where_subquery) and, on Postgres, its own SQL (refresh_days). A per-row `exists` against the
    windows costs a join over every row of the table; a constant bound on the day is a filter the
    scan applies (a DuckDB scan skips the row groups wholly below it, as those incremental runs
    appended can be). Many changed days (over 1,000) keep the `exists` form. The same rows as
    rebuilt_days_condition: a workspace has one window (a second would make its scalar subquery
    fail) with a refresh day (not null: its key test), and no changed day without one. -#}
{% macro rebuilt_days_constants(workspace_id, column, windows, changed_days, days_before=0) -%}
    {#- one query (each costs dbt a statement's work): the windows, and the changed days after them -#}
    {%- set query -%}
        select 0 as part, workspace_id,
            cast(cast({{ dbt.dateadd('day', -1 * days_before, 'refresh_from') }} as date) as varchar) as day_value
        from {{ windows }} where refresh_from is not null
        {%- if changed_days is not none %}
        union all
        select 1 as part, workspace_id, cast(date_day as varchar) as day_value from {{ changed_days }} where date_day is not null
        {%- endif %}
        order by part, workspace_id, day_value
    {%- endset -%}
    {#- read once per node: a daily table asks up to three times (one per CTE that filters its days) -#}
    {%- set cache = model.setdefault('abos_rebuilt_days', {}) if model is defined and model is mapping else {} -%}
    {%- if query not in cache -%}{%- do cache.update({query: run_query(query).rows}) -%}{%- endif -%}
    {%- set rows = cache[query] -%}
    {%- set found = rows | selectattr(0, 'equalto', 0) | list -%}
    {%- set changed = rows | selectattr(0, 'equalto', 1) | list -%}
    {%- if changed | length > 1000 -%}
        {{ return(rebuilt_days_condition(workspace_id, column, windows, changed_days, days_before)) }}
    {%- endif -%}
    {%- set listed = {} -%}
    {%- for row in changed -%}
        {%- do listed.setdefault(row[1], []).append(row[2]) -%}
    {%- endfor -%}
    {#- the workspaces without changed days grouped by their refresh day (many tenants mostly share it) -#}
    {%- set grouped = {} -%}
    {%- set bounds = [] -%}
    {%- set conditions = [] -%}
    {%- for row in found -%}
        {%- set workspace = "'" ~ row[1] | replace("'", "''") ~ "'" -%}
        {%- set days = listed.get(row[1], []) -%}
        {%- do bounds.append(([row[2]] + days) | min) -%}
        {%- if days -%}
            {%- set dated = [] -%}
            {%- for listed_day in days -%}{%- do dated.append("cast('" ~ listed_day ~ "' as date)") -%}{%- endfor -%}
            {%- do conditions.append("(" ~ workspace_id ~ " = " ~ workspace ~ " and (" ~ column ~ " >= cast('"
                ~ row[2] ~ "' as date) or " ~ column ~ " in (" ~ dated | join(', ') ~ ")))") -%}
        {%- else -%}
            {%- do grouped.setdefault(row[2], []).append(workspace) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for refresh_from, workspaces in grouped | dictsort -%}
        {%- do conditions.append("(" ~ workspace_id ~ " in (" ~ workspaces | join(', ') ~ ") and " ~ column
            ~ " >= cast('" ~ refresh_from ~ "' as date))") -%}
    {%- endfor -%}
    {%- if conditions | length == 0 -%}{{ return('1 = 0') }}{%- endif -%}
    {{ return('(' ~ column ~ " >= cast('" ~ bounds | min ~ "' as date) and (" ~ conditions | join(' or ') ~ '))') }}
{%- endmacro %}

{#- The vertical whose refresh windows rebuild `relation` by day, or none. -#}
{% macro refreshed_vertical(relation) -%}
    {%- for vertical in ['ecommerce', 'saas'] -%}
        {%- if relation.identifier in refresh_tables(vertical) and relation.schema is not none -%}
            {{ return(vertical) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{#- The body of int_<vertical>_refresh_days, for a vertical rebuilt by day: per workspace, each
    changed day before its refresh_from (int_<vertical>_refresh_windows), which the daily tables
    rebuild alone; the days from refresh_from on are rebuilt anyway. -#}
{% macro refresh_changed_days(vertical) -%}
with {{ differing_days(vertical) }},

windows as (
    select * from {{ ref('int_' ~ vertical ~ '_refresh_windows') }}
),

final as (
    select differing.workspace_id, differing.date_day
    from differing
    inner join windows
        on windows.workspace_id = differing.workspace_id
    where differing.date_day < windows.refresh_from
)

select * from final
{%- endmacro %}
