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
    read by a table built from them). -#}
{% macro segment_rows_condition(table, alias, weeks=none, kept=false, column=none) -%}
    {%- set spec = segment_tables()[table] -%}
    {%- set weeks = weeks or ref('int_ecommerce_segment_weeks') -%}
    {%- set column = alias ~ '.' ~ (column or spec.column) -%}
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

{#- The pre-hooks of a segment table: on an incremental run, delete every row but those kept (above);
    the segments themselves also drop the previous segment of the window's first week. -#}
{% macro segment_rows_delete(table) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ segment_rows_condition(table, this.identifier, kept=true) }}
    {%- endif -%}
{%- endmacro %}

{% macro segment_first_week_update() -%}
    {%- if is_incremental() -%}
        update {{ this }}
        set previous_segment = null
        where previous_segment is not null
            and exists (
                select 1 from {{ ref('int_ecommerce_segment_weeks') }} as segment_weeks
                where segment_weeks.workspace_id = {{ this.identifier }}.workspace_id
                    and segment_weeks.first_week = {{ this.identifier }}.week_start
            )
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
    {%- set column = 'refreshed.' ~ spec.column -%}
    {%- set found = run_query('select workspace_id, cast(refresh_from as varchar) as refresh_from, '
        ~ 'cast(first_week as varchar) as first_week from ' ~ weeks ~ ' order by workspace_id') -%}
    {#- the workspaces grouped by their weeks (many tenants mostly share them) -#}
    {%- set grouped = {} -%}
    {%- for row in found.rows if row[1] is not none and row[2] is not none -%}
        {%- do grouped.setdefault((row[1], row[2] if spec.first_week else none), []).append(
            "'" ~ row[0] | replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {%- if grouped | length == 0 -%}{{ return('1 = 0') }}{%- endif -%}
    {%- set bounds = [] -%}
    {%- set conditions = [] -%}
    {%- for (refresh_from, first_week), workspaces in grouped | dictsort -%}
        {%- do bounds.append([refresh_from, first_week] | min if first_week else refresh_from) -%}
        {%- do conditions.append("(refreshed.workspace_id in (" ~ workspaces | join(', ') ~ ") and (" ~ column
            ~ " >= cast('" ~ refresh_from ~ "' as date)"
            ~ (" or " ~ column ~ " = cast('" ~ first_week ~ "' as date)" if first_week else "") ~ "))") -%}
    {%- endfor -%}
    {{ return('(' ~ column ~ " >= cast('" ~ bounds | min ~ "' as date) and (" ~ conditions | join(' or ') ~ '))') }}
{%- endmacro %}
