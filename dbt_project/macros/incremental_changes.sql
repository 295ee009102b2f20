{#- Incremental marts (docs/performance.md, "Incremental marts"). The marts built from raw rows
    rebuild, on an incremental run, only the keys the new loads touched, and a full refresh
    (`--full-refresh`, a first build) builds them in full as before.

    Which loads are new: dlt lists every load it completed in `<dataset>._dlt_loads` (written after
    the load's rows), and `int_loads_pending` holds, per source, the completed loads not yet recorded
    as processed (`int_loads_pending__processed`). The on-run-end hook `record_processed_loads`
    records them only when the run built every model that consumes that source's loads, so a failed
    or partial run leaves them pending and the next run takes them again: a superset, never a gap.
    A load still in progress is not listed yet and is taken by the next run. Exact, with no lookback
    window: a load id is stamped when a sync starts, so "ids above the newest one seen" would miss a
    long load that commits after a later one.

    Ecommerce: `int_ecommerce_changes` turns the pending loads into changed orders and people (see
    that model); the marts delete and rebuild those keys (`delete_changed`). SaaS: `invoices` and
    `invoice_lines` take the pending loads' rows, and `int_subscription_mrr_rebuilt` recomputes the
    subscriptions `int_saas_changed_subscriptions` lists. -#}

{#- The models that consume each source's pending loads: the hook records a source's loads as
    processed only when all of them (and int_loads_pending) were built by the run. -#}
{% macro pending_load_consumers(source_name) -%}
    {%- set consumers = {
        'shopify': ['int_ecommerce_changes', 'int_orders_identified', 'int_customers_unified', 'orders',
                    'order_lines', 'refunds', 'customers', 'int_ecommerce_order_digests',
                    'int_ecommerce_cohort_activity'],
        'stripe': ['invoices', 'invoice_lines', 'int_saas_changed_subscriptions', 'int_subscription_mrr_rebuilt',
                   'int_subscription_mrr_recorded', 'int_subscription_mrr_segments', 'int_subscription_mrr_changes',
                   'int_saas_changed_customers', 'int_customer_mrr_changes', 'subscription_items',
                   'int_subscription_plans', 'subscriptions', 'saas_customers', 'mrr_movements'],
    } -%}
    {{ return(consumers[source_name]) }}
{%- endmacro %}

{#- dlt's table of completed loads of a source's dataset, or none when the source has loaded nothing. -#}
{% macro dlt_loads_relation(source_name) -%}
    {%- set node = graph.sources.values() | selectattr('source_name', 'equalto', source_name) | first -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier='_dlt_loads')) }}
{%- endmacro %}

{#- Where the loads already processed are kept: beside int_loads_pending, with the suffix __processed. -#}
{% macro processed_loads_relation(create=false) -%}
    {{ return(model_relation('int_loads_pending', '__processed', create)) }}
{%- endmacro %}

{#- on-run-end: for each source whose consumers all succeeded in this run, record the loads they
    took (int_loads_pending, as built at the start of the run) as processed; for Shopify, the changes
    they rebuilt are then done with (int_ecommerce_changes is emptied). Only `dbt run` and `dbt
    build` build tables. -#}
{% macro record_processed_loads(results) -%}
    {%- if execute and flags.WHICH in ['run', 'build'] -%}
        {%- set built = results | selectattr('status', 'equalto', 'success') | map(attribute='node.name') | list -%}
        {%- for source_name in ['shopify', 'stripe'] -%}
            {%- if (['int_loads_pending'] + pending_load_consumers(source_name)) | reject('in', built) | list | length == 0 -%}
                {%- set processed = processed_loads_relation(create=true) -%}
                {%- set pending = model_relation('int_loads_pending') -%}
                {%- do run_query('create table if not exists ' ~ processed ~ ' as select source_name, load_id from '
                    ~ pending ~ ' where 1 = 0') -%}
                {%- do run_query('insert into ' ~ processed ~ ' select source_name, load_id from ' ~ pending
                    ~ " where source_name = '" ~ source_name ~ "'") -%}
                {#- Postgres: int_loads_pending's anti-join is planned with the table's statistics -#}
                {%- do run_query('analyze ' ~ processed) if target.type == 'postgres' -%}
                {%- if source_name == 'shopify' -%}
                    {#- Postgres: truncated, not deleted, so the change set's rows do not stay behind as
                        dead rows that every reader's scan goes through until a vacuum (a full build's
                        change set holds every order and person; autovacuum may be off) -#}
                    {%- do run_query(('truncate ' if target.type == 'postgres' else 'delete from ')
                        ~ model_relation('int_ecommerce_changes')) -%}
                {%- else -%}
                    {#- the SaaS workspaces' state the SaaS models are now built with -#}
                    {%- set state = saas_workspace_state_relation(create=true) -%}
                    {%- do run_query('drop table if exists ' ~ state) -%}
                    {%- do run_query('create table ' ~ state ~ ' as ' ~ saas_workspace_state(
                        model_relation('int_saas_workspaces'), model_relation('int_fx_rates_ranged'),
                        model_relation('int_fx_rates_daily'))) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- In a model's SQL: true for rows of a load `source_name` has pending (`load_epoch` is the row's
    load id as a number, as the staging models give it).

    On Postgres the pending loads' ids are one array, computed once (an uncorrelated subquery), so the
    condition is a filter on the raw table the staging view reads, applied as it is scanned: only the
    pending loads' rows get the view's columns computed. As `in (select ...)` it was a semi-join above
    the view, which computed every column of every row first: `invoices` at scale 1 (1,054,765 raw
    rows, 9,321 pending) 2.8-3.1 s, now 0.4 s (docs/performance.md, "Postgres after a change: the
    analyze rule, the pending loads' rows; the floor of a build after a change"). The same rows: a
    null `load_epoch` matches neither, and no caller negates it. DuckDB keeps the `in`, which it
    filters in the scan itself. -#}
{% macro in_pending_loads(source_name, load_epoch) -%}
    {%- set pending -%}
        select pending.load_epoch from {{ ref('int_loads_pending') }} as pending
        where pending.source_name = '{{ source_name }}'
    {%- endset -%}
    {%- if target.type == 'postgres' -%}
        {{ load_epoch }} = any(array({{ pending }}))
    {%- else -%}
        {{ load_epoch }} in ({{ pending }})
    {%- endif -%}
{%- endmacro %}

{#- True for the rows of `alias` whose `columns` (the key) are among the rows of `keys` (a relation or a
    subquery with those columns), as a correlated EXISTS: as a condition of its own (ANDed), Postgres
    and DuckDB both run it as a semi-join. -#}
{% macro key_exists(keys, alias, columns) -%}
    exists (select 1 from {{ keys }} as changed
            where {% for column in columns %}changed.{{ column }} = {{ alias }}.{{ column }}{{ " and " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- The same, where the condition sits under an OR and `keys` is small (an incremental run's change
    set): on Postgres a row IN an uncorrelated subquery, which Postgres hashes once (while the hash
    table fits in work_mem); a correlated EXISTS under an OR cannot become a semi-join there and is
    run once per row of `alias`. The same rows in a WHERE: a null key matches nothing either way (IN
    gives null, which an OR with false leaves null and a WHERE drops; no caller negates it). DuckDB
    keeps the EXISTS, which it decorrelates itself. -#}
{% macro among_keys(keys, alias, columns) -%}
    {%- if target.type == 'postgres' -%}
        ({% for column in columns %}{{ alias }}.{{ column }}{{ ", " if not loop.last }}{% endfor %}) in (
            select {% for column in columns %}changed.{{ column }}{{ ", " if not loop.last }}{% endfor %}
            from {{ keys }} as changed)
    {%- else -%}
        {{ key_exists(keys, alias, columns) }}
    {%- endif -%}
{%- endmacro %}

{#- The orders (workspace_id, order_id) an incremental ecommerce run rebuilds. -#}
{% macro changed_orders() -%}
    (select distinct workspace_id, order_id from {{ ref('int_ecommerce_changes') }} where order_id is not null)
{%- endmacro %}

{#- The rows of `relation` (keyed by workspace_id and order_id) that a run rebuilds: those of the
    changed orders on an incremental run, every row on a full build. -#}
{% macro rows_of_changed_orders(relation) -%}
    select staged.* from {{ relation }} as staged
    {%- if is_incremental() %}
    inner join {{ changed_orders() }} as changed
        on changed.workspace_id = staged.workspace_id
        and changed.order_id = staged.order_id
    {%- endif %}
{%- endmacro %}

{#- The people (workspace_id, person_id) an incremental ecommerce run rebuilds: each changed order's
    person before the run (kept by int_ecommerce_changes) and after it (int_orders_identified, once
    rebuilt), and the people a changed account's e-mail matched or matches. The relations default
    to the models' refs. -#}
{% macro changed_people(changes=none, identified=none) -%}
    {%- set changes = changes or ref('int_ecommerce_changes') -%}
    {%- set identified = identified or ref('int_orders_identified') -%}
    (select workspace_id, person_id from {{ changes }} where person_id is not null
    union
    select identified.workspace_id, identified.person_id
    from {{ identified }} as identified
    inner join {{ changes }} as changes
        on changes.workspace_id = identified.workspace_id
        and changes.order_id = identified.order_id)
{%- endmacro %}

{#- The pre-hook of an incremental mart: delete the rows whose key is in `keys` (a subquery with
    workspace_id and `column`), which the model's SQL then rebuilds. -#}
{% macro delete_changed(keys, column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where exists (
            select 1 from {{ keys }} as changed
            where changed.workspace_id = {{ this.identifier }}.workspace_id
                and changed.{{ column }} = {{ this.identifier }}.{{ column }}
        )
    {%- endif -%}
{%- endmacro %}

{#- The orders the orders mart rebuilds: the changed orders, and every order of a changed person. -#}
{% macro ecommerce_changed_order_set() -%}
    (select workspace_id, order_id from {{ changed_orders() }} as changed_orders
    union
    select identified.workspace_id, identified.order_id
    from {{ ref('int_orders_identified') }} as identified
    inner join {{ changed_people() }} as changed_people
        on changed_people.workspace_id = identified.workspace_id
        and changed_people.person_id = identified.person_id)
{%- endmacro %}

{#- SaaS: what a workspace's SaaS models depend on beyond its Stripe rows, kept by the hook when the
    run built every SaaS model (`int_saas_workspaces__built`): its timezone (every day moves), its
    reporting currency, its as-of day (the change points stop there; the marts' MRR today is taken
    and converted on it), a fingerprint of the exchange rates on that day (as fx_rate_joins takes
    them: the last published day's after it) and one of every exchange rate (mrr_movements converts
    at each change day's). An incremental run compares it with the workspaces now
    (saas_moved_workspaces). `rates` and `daily_rates`: int_fx_rates_ranged and int_fx_rates_daily. -#}
{% macro saas_workspace_state(workspaces, rates, daily_rates) -%}
    select workspaces.workspace_id, workspaces.timezone, workspaces.reporting_currency, workspaces.as_of_day,
        (select cast(coalesce(sum({{ row_digest(['daily.currency', 'daily.units_per_eur']) }}), 0) as decimal(38, 0))
         from {{ daily_rates }} as daily
         where daily.date_day = least(workspaces.as_of_day, (select max(date_day) from {{ daily_rates }}))
        ) as as_of_rates_digest,
        (select cast(coalesce(sum({{ row_digest(['rates.currency', 'rates.units_per_eur', 'rates.valid_from']) }}), 0)
                as decimal(38, 0))
         from {{ rates }} as rates) as rates_digest
    from {{ workspaces }} as workspaces
{%- endmacro %}

{#- Where the hook keeps it: beside int_saas_workspaces, with the suffix __built (none before). -#}
{% macro saas_workspace_state_relation(create=false) -%}
    {{ return(model_relation('int_saas_workspaces', '__built', create)) }}
{%- endmacro %}

{#- A subquery of the SaaS workspaces whose `columns` of the state differ from the ones kept when the
    SaaS models were last built, or that were not there then (all of them when no state was kept):
    an incremental run rebuilds every row of theirs that depends on those columns. -#}
{% macro saas_moved_workspaces(columns, use_refs=true) -%}
    {%- set state = saas_workspace_state_relation() if execute else none -%}
    {%- set workspaces = ref('int_saas_workspaces') if use_refs else model_relation('int_saas_workspaces') -%}
    {%- set rates = ref('int_fx_rates_ranged') if use_refs else model_relation('int_fx_rates_ranged') -%}
    {%- set daily_rates = ref('int_fx_rates_daily') if use_refs else model_relation('int_fx_rates_daily') -%}
    (select now_state.workspace_id
    from ({{ saas_workspace_state(workspaces, rates, daily_rates) }}) as now_state
    {%- if state is not none %}
    left join {{ state }} as built
        on built.workspace_id = now_state.workspace_id
    where built.workspace_id is null
        {%- for column in columns %}
        or built.{{ column }} is distinct from now_state.{{ column }}
        {%- endfor %}
    {%- endif %})
{%- endmacro %}

{#- The first day whose exchange rates differ from those the SaaS daily tables (and mrr_movements,
    window_readers) were last built with: the first '*' day of int_saas_day_digests whose digest
    differs from the copy the on-run-end hook keeps (macros/incremental_days.sql; a rate's digest
    is on its first day, and a day converts at the rate in force then or, after the last published
    day, that day's), or 1900-01-01 when no copy is kept; 9999-12-31 when none differs. A scalar
    subquery. -#}
{% macro saas_rates_changed_from(use_refs=true) -%}
    {%- set digests = ref('int_saas_day_digests') if use_refs else model_relation('int_saas_day_digests') -%}
    {%- set state = refresh_state_relation('saas') if execute else none -%}
    {%- if state is none or digests is none -%}
        cast('1900-01-01' as date)
    {%- else -%}
        (select coalesce(min(coalesce(rates.date_day, built.date_day)), cast('9999-12-31' as date))
         from (select date_day, digest from {{ digests }} where workspace_id = '*') as rates
         full outer join (select date_day, digest from {{ state }} where workspace_id = '*') as built
             on built.date_day = rates.date_day
         where rates.digest is null or built.digest is null or rates.digest <> built.digest)
    {%- endif -%}
{%- endmacro %}

{#- The SaaS models an incremental run rebuilds by changed subscription or customer, and what else
    each rebuilds in full per workspace: the workspaces whose `moved` state columns changed; and,
    with `rates_from`, the rows whose day (that column) is on or after the first day whose exchange
    rates changed (saas_rates_changed_from: mrr_movements converts at each change day's rate). -#}
{% macro saas_incremental_models() -%}
    {%- set by_subscription = {'key': 'subscription_id', 'changes': 'int_saas_changed_subscriptions', 'moved': [],
                               'rates_from': none} -%}
    {%- set by_customer = {'key': 'customer_id', 'changes': 'int_saas_changed_customers', 'moved': [],
                           'rates_from': none} -%}
    {{ return({
        'int_subscription_mrr_recorded': by_subscription,
        'int_subscription_mrr_segments': by_subscription,
        'int_subscription_mrr_changes': by_subscription,
        'subscription_items': by_subscription,
        'int_subscription_plans': by_subscription,
        'subscriptions': {'key': 'subscription_id', 'changes': 'int_saas_changed_subscriptions',
                          'moved': ['as_of_day', 'reporting_currency', 'as_of_rates_digest'], 'rates_from': none},
        'int_customer_mrr_changes': by_customer,
        'saas_customers': {'key': 'customer_id', 'changes': 'int_saas_changed_customers',
                           'moved': ['as_of_day', 'reporting_currency', 'as_of_rates_digest'], 'rates_from': none},
        'mrr_movements': {'key': 'customer_id', 'changes': 'int_saas_changed_customers',
                          'moved': ['reporting_currency'], 'rates_from': 'change_date'},
    }) }}
{%- endmacro %}

{#- The condition on rows of SaaS model `name` (alias `alias`, with workspace_id and its key) that an
    incremental run rebuilds: its key in the change set, or its workspace moved. With refs in a
    model; in a test (use_refs false) with the relations as built, or none before they are. -#}
{% macro saas_rebuilt_condition(name, alias, use_refs=true) -%}
    {%- set disjuncts = saas_rebuilt_disjuncts(name, alias, use_refs, hashed=true) -%}
    {%- if disjuncts is none -%}{{ return(none) }}{%- endif -%}
    {{ return('(' ~ disjuncts | join(' or ') ~ ')') }}
{%- endmacro %}

{#- The same condition as a list of conditions any of which selects a row, the key's EXISTS first
    (a data test's rows are selected by each in turn on Postgres: get_where_subquery). `hashed`: the
    key as among_keys (a small change set under the OR), else as key_exists. -#}
{% macro saas_rebuilt_disjuncts(name, alias, use_refs=true, hashed=false) -%}
    {%- set model = saas_incremental_models()[name] -%}
    {%- set changes = ref(model.changes) if use_refs else model_relation(model.changes) -%}
    {%- if changes is none -%}{{ return(none) }}{%- endif -%}
    {%- if hashed -%}
        {%- set key = among_keys(changes, alias, ['workspace_id', model.key]) -%}
    {%- else -%}
        {%- set key = key_exists(changes, alias, ['workspace_id', model.key]) -%}
    {%- endif -%}
    {%- set disjuncts = [key] -%}
    {%- if model.moved -%}
        {%- do disjuncts.append(alias ~ '.workspace_id in ' ~ saas_moved_workspaces(model.moved, use_refs)) -%}
    {%- endif -%}
    {%- if model.rates_from -%}
        {%- do disjuncts.append(alias ~ '.' ~ model.rates_from ~ ' >= ' ~ saas_rates_changed_from(use_refs)) -%}
    {%- endif -%}
    {{ return(disjuncts) }}
{%- endmacro %}

{#- The pre-hook of an incremental SaaS model: delete the rows the run rebuilds. -#}
{% macro saas_delete_rebuilt(name) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ saas_rebuilt_condition(name, this.identifier) }}
    {%- endif -%}
{%- endmacro %}

{#- In an incremental SaaS model's SQL: `alias`'s rows the run rebuilds, or every row in full. -#}
{% macro saas_rebuilt_rows(name, alias) -%}
    {%- if is_incremental() -%}{{ saas_rebuilt_condition(name, alias) }}{%- else -%}1 = 1{%- endif -%}
{%- endmacro %}

{#- For the data tests of an incremental mart on an incremental `dbt build` (get_where_subquery): the
    conditions on its rows (alias `refreshed`), a list any of which holds for the rows this run
    rebuilt (the first an EXISTS: the later ones select the rows it did not), or none for a model
    not scoped. A model whose test key contains the key it is rebuilt by (orders by order,
    customers by person, the SaaS change points by subscription) reads the rebuilt rows: a duplicate
    key falls wholly inside or outside them, and the rows outside were tested when they were built.
    A model rebuilt by one key and tested on another (`rebuilt_by_other_key`: order_lines and
    refunds by order, invoices and invoice_lines by load, subscription_items by subscription) reads
    the rebuilt rows and every row that shares its test key with one of them, so a rebuilt row that
    duplicates a kept one still fails the key test. -#}
{% macro rebuilt_rows_disjuncts(relation) -%}
    {%- set name = relation.identifier -%}
    {%- set models = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', name) | selectattr('schema', 'equalto', relation.schema) | list -%}
    {%- if models | length == 0 -%}{{ return(none) }}{%- endif -%}
    {%- set rebuilt = rebuilt_rows_of(name, 'refreshed') -%}
    {%- set key = rebuilt_by_other_key().get(name) -%}
    {#- (the test being compiled: a relationships test needs the rebuilt rows alone, its parents keep
        every key a kept row names) -#}
    {%- set test = model.get('test_metadata') if model is mapping else none -%}
    {%- if rebuilt is none or key is none or (test and test.get('name') == 'relationships') -%}{{ return(rebuilt) }}{%- endif -%}
    {#- the rebuilt rows (a null key among them too), and the rows sharing a key with one of them -#}
    {{ return(rebuilt + ['exists (select 1 from ' ~ relation ~ ' as rebuilt'
              ~ ' where rebuilt.workspace_id = refreshed.workspace_id and rebuilt.' ~ key ~ ' = refreshed.' ~ key
              ~ ' and (' ~ rebuilt_rows_of(name, 'rebuilt') | join(' or ') ~ '))']) }}
{%- endmacro %}

{#- The incremental marts tested on another key than the one they are rebuilt by: each one's test key
    (besides workspace_id). -#}
{% macro rebuilt_by_other_key() -%}
    {{ return({'order_lines': 'order_line_id', 'refunds': 'refund_id', 'invoices': 'invoice_id',
               'invoice_lines': 'invoice_line_id', 'subscription_items': 'subscription_item_id'}) }}
{%- endmacro %}

{#- The conditions (a list, any of which holds) on the rows (alias `alias`) of incremental mart `name`
    that this run rebuilt, from the change sets as built (no refs), or none (not such a mart, or not
    built yet). -#}
{% macro rebuilt_rows_of(name, alias) -%}
    {%- if name in ['int_orders_identified', 'orders', 'int_customers_unified', 'customers', 'order_lines', 'refunds'] -%}
        {%- set changes = model_relation('int_ecommerce_changes') -%}
        {%- set identified = model_relation('int_orders_identified') -%}
        {%- if changes is none or identified is none -%}{{ return(none) }}{%- endif -%}
        {%- set people = key_exists(changed_people(changes, identified), alias, ['workspace_id', 'person_id']) -%}
        {%- set orders = key_exists(changes, alias, ['workspace_id', 'order_id']) -%}
        {{ return({'int_orders_identified': [orders], 'orders': [orders, people],
                   'int_customers_unified': [people], 'customers': [people],
                   'order_lines': [orders], 'refunds': [orders]}[name]) }}
    {%- elif name == 'int_subscription_mrr_rebuilt' -%}
        {%- set changed = model_relation('int_saas_changed_subscriptions') -%}
        {%- if changed is none -%}{{ return(none) }}{%- endif -%}
        {{ return([key_exists(changed, alias, ['workspace_id', 'subscription_id'])]) }}
    {%- elif name in saas_incremental_models() -%}
        {{ return(saas_rebuilt_disjuncts(name, alias, use_refs=false)) }}
    {%- elif name in ['invoices', 'invoice_lines'] -%}
        {%- set pending = model_relation('int_loads_pending') -%}
        {%- if pending is none -%}{{ return(none) }}{%- endif -%}
        {{ return([alias ~ '.load_epoch in (select load_epoch from ' ~ pending ~ " where source_name = 'stripe')"]) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The pre-hooks of int_ecommerce_cohort_activity: delete the rows the run rebuilds, every row of a
    changed person (before or after the change; `part` 'people') and each workspace's months from its
    refresh_from's month on (`part` 'months'; int_ecommerce_refresh_windows: a changed exchange rate,
    timezone or reporting currency, a new workspace; the person rows, activity_month null, carry no
    money). Two statements, not one with `or`: under the `or`, Postgres ran the months' look-up as a
    subquery once per row of the table (1.9 M rows at scale 1); alone, each is a join by hash
    (docs/performance.md, "Postgres after a small change: two `or`s run once per row"). -#}
{% macro cohort_activity_delete(part) -%}
    {%- if is_incremental() -%}
        {%- if part == 'people' -%}
        delete from {{ this }}
        where exists (
                select 1 from {{ changed_people() }} as changed
                where changed.workspace_id = {{ this.identifier }}.workspace_id
                    and changed.person_id = {{ this.identifier }}.person_id
            )
        {%- elif part == 'months' -%}
        delete from {{ this }}
        using {{ ref('int_ecommerce_refresh_windows') }} as windows
        where windows.workspace_id = {{ this.identifier }}.workspace_id
            and {{ this.identifier }}.activity_month >= cast({{ dbt.date_trunc('month', 'windows.refresh_from') }} as date)
        {%- else -%}
        {{ exceptions.raise_compiler_error("cohort_activity_delete: part is 'people' or 'months', not " ~ part) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
