{#- The RFM segments by week (docs/performance.md, "The RFM segments rebuilt by week"). The segment
    tables (`segment_tables()`) keep, per workspace, the weeks whose inputs have not changed since
    they were built, and rebuild the weeks from int_ecommerce_segment_weeks' `refresh_from` on.

    How the week is found: int_ecommerce_segment_day_digests fingerprints, per workspace and local
    day, what the segments are made of: each sold order and each refund of a person (the person, the
    day, the amounts in the shop's and the reporting currency), plus the workspace's last data day
    (the current week's snapshot) on that day and the window's length (`rfm_weeks`) on 1900-01-01.
    The on-run-end hook record_refresh_state keeps the digests the segment tables were last built
    from, as for the daily tables (macros/incremental_days.sql, the "vertical" `ecommerce_segment`),
    and differing_days compares the two. A person's R, F and M change from an input's week on, and
    the quintiles are taken across every person of a week, so the first week with a changed day is
    rebuilt with every week after it; a new last day rebuilds from the week of the one the tables
    were built with (its snapshot was that day). An order edit that leaves these inputs alone (a
    shipping country, a product title) rebuilds nothing here.

    The window's first week moves on with the last day: weeks before it are deleted, and its rows
    keep their scores (R, F and M count every order to date; the quintiles take the same people) but
    lose their previous segment (the window's first week has none): an update, not a rebuild. The
    tables read from the segments (segment_tables(), but the first) rebuild the first week always. -#}

{#- The segment tables, each with the column its rows are dated by and whether its first week must
    be rebuilt with every change (weekly and moves leave the window's first week's moves out). -#}
{% macro segment_tables() -%}
    {{ return({
        'ecommerce_customer_segments': {'column': 'week_start', 'first_week': false},
        'ecommerce_segment_weekly': {'column': 'week_start', 'first_week': true},
        'ecommerce_segment_moves': {'column': 'week_start', 'first_week': true},
        'ecommerce_segment_metrics': {'column': 'date', 'first_week': false},
        'ecommerce_segment_slices': {'column': 'date', 'first_week': false},
    }) }}
{%- endmacro %}

{#- CTEs (after `with`, given CTEs `orders`, `refunds` and `workspaces`): `money`, one row per sold
    order and per refund of a person, by local day (`date`), with orders (1 or 0), net_sales (+ for
    an order after discounts, − for a refund) in the shop's currency and reporting_net_sales in the
    workspace's reporting currency at the day's rate (null when a rate is missing). What R, F and M
    and the week's net sales are made of, so also what the segments' digests fingerprint. -#}
{% macro segment_money() -%}
dated as (
    select workspace_id, person_id, order_date as date, currency, 1 as orders, discounted_sales as net_sales
    from orders
    where not is_cancelled
    union all
    select workspace_id, person_id, refund_date as date, currency, 0 as orders, -refunded_sales as net_sales
    from refunds
    where person_id is not null
),

money as (
    select
        dated.workspace_id,
        dated.person_id,
        dated.date,
        dated.currency,
        dated.orders,
        dated.net_sales,
        {{ fx_convert('dated.net_sales', 'dated.currency', 'workspaces.reporting_currency', 4) }} as reporting_net_sales
    from dated
    inner join workspaces on workspaces.workspace_id = dated.workspace_id
    {{ fx_rate_joins('dated.date', 'dated.currency', 'workspaces.reporting_currency') }}
)
{%- endmacro %}

{#- The condition on a segment table's rows (`alias`) an incremental run rebuilds: those dated from
    the workspace's refresh_from on (int_ecommerce_segment_weeks), and the window's first week for the
    tables that rebuild it. With `kept`, the opposite among the rows to keep: those of the window
    (from its first week on) before refresh_from; every other row is deleted before the run inserts
    the rebuilt ones. `column` names the rows' week or day when it is not the table's (the segments
    read by a table built from them).

    When the model runs (the weeks are built by then) the weeks are read and written in as constants
    (segment_week_groups): a per-row `exists` against the weeks is a join over every row of the table
    (17 M segment rows at scale 1, read by the segments' two pre-hooks and by each of the four tables
    built from them after every change), where a constant bound on the week is a filter the scan
    applies (5.45 → 0.72 CPU s for those six statements on a scale-1-sized table), and a DuckDB scan
    skips the row groups wholly outside it: those incremental runs appended, not a full build's, each
    of which holds every week (docs/performance.md, "dbt after a small change: the segment tables
    read by constants"). The `exists` form is kept at parse time and when the weeks cannot be
    written so. -#}
{% macro segment_rows_condition(table, alias, weeks=none, kept=false, column=none) -%}
    {%- set spec = segment_tables()[table] -%}
    {%- set weeks = weeks or ref('int_ecommerce_segment_weeks') -%}
    {%- set column = alias ~ '.' ~ (column or spec.column) -%}
    {%- set grouped = segment_week_groups() -%}
    {%- if grouped is not none -%}
        {{ return(segment_week_constants(spec, alias, column, grouped, kept)) }}
    {%- endif -%}
    {{ 'not ' if kept }}exists (
        select 1 from {{ weeks }} as segment_weeks
        where segment_weeks.workspace_id = {{ alias }}.workspace_id
        {%- if kept %}
            and {{ column }} >= segment_weeks.first_week
            and {{ column }} < segment_weeks.refresh_from
            {%- if spec.first_week %}
            and {{ column }} > segment_weeks.first_week
            {%- endif %}
        {%- else %}
            and ({{ column }} >= segment_weeks.refresh_from
                {%- if spec.first_week %} or {{ column }} = segment_weeks.first_week{% endif %})
        {%- endif %}
    )
{%- endmacro %}

{#- The weeks of int_ecommerce_segment_weeks as built, read when a model or test runs: the quoted
    workspace ids grouped by their (refresh_from, first_week), as text (many tenants mostly share
    them); none at parse time, before the weeks are built, with a null week (the `exists` form
    selects no row there, as it does for a workspace missing from the weeks) or over 1,000 groups. -#}
{% macro segment_week_groups() -%}
    {%- set weeks = model_relation('int_ecommerce_segment_weeks') if execute else none -%}
    {%- if weeks is none -%}{{ return(none) }}{%- endif -%}
    {%- set found = run_query('select workspace_id, cast(refresh_from as varchar) as refresh_from, '
        ~ 'cast(first_week as varchar) as first_week from ' ~ weeks ~ ' order by workspace_id') -%}
    {%- set grouped = {} -%}
    {%- for row in found.rows -%}
        {%- if row[0] is none or row[1] is none or row[2] is none -%}{{ return(none) }}{%- endif -%}
        {%- do grouped.setdefault((row[1], row[2]), []).append("'" ~ row[0] | replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {{ return(none if grouped | length > 1000 else grouped) }}
{%- endmacro %}

{#- One condition per group of workspaces sharing their weeks (`grouped`: segment_week_groups), or'd:
    `<alias>.workspace_id in (...) and <the caller's condition>`, the caller given the group's
    refresh_from and first_week (ISO dates; segment_week_literal writes one in); `false` without a
    group. The three readers of the weeks as constants (segment_week_constants, the first week's
    update, the segments' week before) are this with their own condition. -#}
{% macro segment_week_any(alias, grouped) -%}
    {%- set conditions = [] -%}
    {%- for (refresh_from, first_week), workspaces in grouped | dictsort -%}
        {%- do conditions.append('(' ~ alias ~ '.workspace_id in (' ~ workspaces | join(', ') ~ ') and '
            ~ caller(refresh_from, first_week) | trim ~ ')') -%}
    {%- endfor -%}
    {{ return(conditions | join(' or ') if conditions else 'false') }}
{%- endmacro %}

{#- A week of segment_week_groups (an ISO date) as a date constant, `weeks` weeks on. -#}
{% macro segment_week_literal(day, weeks=0) -%}
    {{ return("cast('" ~ (modules.datetime.date.fromisoformat(day) + modules.datetime.timedelta(days=7 * weeks)).isoformat()
        ~ "' as date)") }}
{%- endmacro %}

{#- segment_rows_condition with the weeks as constants (`grouped`: segment_week_groups), the same rows:
    per group of workspaces, the rebuilt weeks (under a bound on the week the scan applies); with
    `kept`, every row but the kept ones (`not coalesce(...)`: a row of a workspace the weeks do not
    list is deleted, as `not exists` deletes it). -#}
{% macro segment_week_constants(spec, alias, column, grouped, kept=false) -%}
    {%- set any -%}
        {%- call(refresh_from, first_week) segment_week_any(alias, grouped) -%}
            {%- if kept -%}
                {{ column }} >= {{ segment_week_literal(first_week) }} and {{ column }} < {{ segment_week_literal(refresh_from) }}
                {%- if spec.first_week %} and {{ column }} > {{ segment_week_literal(first_week) }}{% endif -%}
            {%- else -%}
                ({{ column }} >= {{ segment_week_literal(refresh_from) }}
                {%- if spec.first_week %} or {{ column }} = {{ segment_week_literal(first_week) }}{% endif %})
            {%- endif -%}
        {%- endcall -%}
    {%- endset -%}
    {%- if kept -%}
        {{ return('not coalesce(' ~ any ~ ', false)') }}
    {%- endif -%}
    {%- if grouped | length == 0 -%}{{ return('1 = 0') }}{%- endif -%}
    {%- set bounds = [] -%}
    {%- for refresh_from, first_week in grouped -%}
        {%- do bounds.append([refresh_from, first_week] | min if spec.first_week else refresh_from) -%}
    {%- endfor -%}
    {{ return('(' ~ column ~ ' >= ' ~ segment_week_literal(bounds | min) ~ ' and (' ~ any ~ '))') }}
{%- endmacro %}

{#- The pre-hooks of a segment table: on an incremental run, delete every row but those kept (above);
    the segments themselves also drop the previous segment of the window's first week. -#}
{% macro segment_rows_delete(table) -%}
    {%- if is_incremental() -%}
        {%- set grouped = segment_week_groups() if segment_weeks_indexed(table) else none -%}
        delete from {{ this }}
        where {{ segment_rows_condition(table, this.identifier, kept=true) if grouped is none
            else segment_rows_deleted_by_index(table, this.identifier, grouped) }}
    {%- endif -%}
{%- endmacro %}

{#- Postgres: the index on a segment table's workspace and week, or none (a list of dbt's `indexes`
    config). The largest table, ecommerce_customer_segments (17 M rows at scale 1), is written in week
    order (its final `order by`) with this index: an incremental run rebuilds a suffix of each
    workspace's weeks, so its delete, its first week's update, its read of the week before and the
    rebuilt weeks' data tests read those weeks' pages alone, not every page of the table
    (docs/performance.md, "Postgres after a small change: the segments by their weeks' index"). A
    deleted week's pages, once vacuumed, are filled by the next insert in week order again. -#}
{% macro segment_weeks_index(table) -%}
    {%- if target.type == 'postgres' and table == 'ecommerce_customer_segments' -%}
        {{ return([{'columns': ['workspace_id', 'week_start']}]) }}
    {%- endif -%}
    {{ return([]) }}
{%- endmacro %}

{#- Whether the table dbt is building (`this`) has that index: a table built before it came has it
    (and its week order) from its next full refresh, and deletes by the negation until then (a walk
    of its workspaces without the index would read the table once a step).

    Read from pg_index's key columns of this table alone, not pg_indexes: its `indexdef` is
    pg_get_indexdef, which a plan may call on every index of the database before the filter on the
    table's name, and which opens the relation it describes: it waited on an index whose table dbt's
    other thread was dropping (a rebuilt table's backup), then failed the statement with "could not
    open relation with OID" once the drop committed (CI, 2026-12-07; the test
    test_the_segments_build_on_postgres_does_not_wait_on_a_table_another_session_drops). -#}
{% macro segment_weeks_indexed(table) -%}
    {%- if not segment_weeks_index(table) -%}{{ return(false) }}{%- endif -%}
    {%- set found = run_query("select count(*) from pg_index as x where x.indrelid = to_regclass(format('%I.%I', '"
        ~ this.schema ~ "', '" ~ this.identifier ~ "')) and x.indexprs is null and x.indpred is null"
        ~ " and array(select a.attname::text from unnest(x.indkey::int2[]) with ordinality as k (attnum, n)"
        ~ " inner join pg_attribute as a on a.attrelid = x.indrelid and a.attnum = k.attnum order by k.n)"
        ~ " = array['workspace_id', 'week_start']") -%}
    {{ return(found.rows[0][0] > 0) }}
{%- endmacro %}

{#- The rows segment_rows_condition(kept=true) deletes, as conditions the index serves (its negation
    of the kept rows is read row by row): per group of workspaces (`grouped`: segment_week_groups), the
    weeks from refresh_from on and before the first week (the first week too for the tables that
    rebuild it); the rows of the workspaces the table holds and the weeks do not list, found by a walk
    of the index from workspace to workspace when the hook runs and written in as constants (an
    array computed in the statement would be planned as a large share of the rows: a sequential
    scan); and, as there, a null workspace or week (each a condition on the index's first column). -#}
{% macro segment_rows_deleted_by_index(table, alias, grouped) -%}
    {%- set column = alias ~ '.' ~ segment_tables()[table].column -%}
    {%- set before = '<=' if segment_tables()[table].first_week else '<' -%}
    {%- set conditions = [] -%}
    {%- set listed = [] -%}
    {%- for (refresh_from, first_week), workspaces in grouped | dictsort -%}
        {%- set workspace = alias ~ '.workspace_id in (' ~ workspaces | join(', ') ~ ')' -%}
        {%- do conditions.append('(' ~ workspace ~ ' and ' ~ column ~ ' >= ' ~ segment_week_literal(refresh_from) ~ ')') -%}
        {%- do conditions.append('(' ~ workspace ~ ' and ' ~ column ~ ' ' ~ before ~ ' ' ~ segment_week_literal(first_week) ~ ')') -%}
        {%- do conditions.append('(' ~ workspace ~ ' and ' ~ column ~ ' is null)') -%}
        {%- do listed.extend(workspaces) -%}
    {%- endfor -%}
    {%- set held -%}
        with recursive held (workspace_id) as (
            select min(workspace_id) from {{ this }}
            union all
            select (select min(later.workspace_id) from {{ this }} as later where later.workspace_id > held.workspace_id)
            from held
            where held.workspace_id is not null
        )
        select workspace_id from held where workspace_id is not null
    {%- endset -%}
    {%- set unlisted = [] -%}
    {%- for row in run_query(held).rows -%}
        {%- set workspace = "'" ~ row[0] | replace("'", "''") ~ "'" -%}
        {%- if workspace not in listed -%}{%- do unlisted.append(workspace) -%}{%- endif -%}
    {%- endfor -%}
    {%- if unlisted -%}
        {%- do conditions.append(alias ~ '.workspace_id in (' ~ unlisted | join(', ') ~ ')') -%}
    {%- endif -%}
    {%- do conditions.append(alias ~ '.workspace_id is null') -%}
    {{ return(conditions | join('\n            or ')) }}
{%- endmacro %}

{% macro segment_first_week_update() -%}
    {%- if is_incremental() -%}
        {%- set grouped = segment_week_groups() -%}
        update {{ this }}
        set previous_segment = null
        where previous_segment is not null
        {%- if grouped is not none %}
            {#- each workspace's first week as a constant (segment_rows_condition) #}
            and ({% call(refresh_from, first_week) segment_week_any(this.identifier, grouped) -%}
                {{ this.identifier }}.week_start = {{ segment_week_literal(first_week) }}
            {%- endcall %})
        {%- else %}
            and exists (
                select 1 from {{ ref('int_ecommerce_segment_weeks') }} as segment_weeks
                where segment_weeks.workspace_id = {{ this.identifier }}.workspace_id
                    and segment_weeks.first_week = {{ this.identifier }}.week_start
            )
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- For the data tests of a segment table on an incremental `dbt build` (get_where_subquery): the
    condition on its rows (alias `refreshed`) that holds for the weeks the run rebuilt, or none for
    another relation. A test's key holds the week or day, so a duplicate falls wholly inside or
    outside the rebuilt weeks, and the weeks kept were tested when they were built.

    The weeks are read when the test runs (after int_ecommerce_segment_weeks was built) and written
    into the condition as constants: a per-row `exists` against the weeks costs a join over every row
    of the table (17 M rows of segments at scale 1, 2.6-3.3 s per test after a small change), where
    a constant bound on the week is a filter the scan applies (a DuckDB scan skips the row groups
    wholly below it; a full build's row groups hold every week). Same rows as segment_rows_condition. -#}
{% macro segment_rebuilt_rows(relation) -%}
    {%- if relation.identifier not in segment_tables() -%}{{ return(none) }}{%- endif -%}
    {%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', relation.identifier) | selectattr('schema', 'equalto', relation.schema) | list -%}
    {%- set weeks = model_relation('int_ecommerce_segment_weeks') -%}
    {%- if models | length == 0 or weeks is none -%}{{ return(none) }}{%- endif -%}
    {%- set spec = segment_tables()[relation.identifier] -%}
    {%- set grouped = segment_week_groups() -%}
    {%- if grouped is none -%}
        {{ return(segment_rows_condition(relation.identifier, 'refreshed', weeks=weeks)) }}
    {%- endif -%}
    {{ return(segment_week_constants(spec, 'refreshed', 'refreshed.' ~ spec.column, grouped)) }}
{%- endmacro %}
