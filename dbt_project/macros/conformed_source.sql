{#- A source relation that always has the columns its YAML declares, always under an alias.

    Raw tables are created by dlt only once data arrives, and a column that has only ever been
    null may not exist yet (a store with no refunds, a Stripe account with no amount_off coupons, a
    deployment with no Shopify workspace at all). Staging models select from
    `{{ conformed_source('shopify', 'order_refunds', 'refunds') }}` instead of `source()`: a missing
    table becomes an empty relation and missing columns become typed nulls, both taken from the
    `columns` (name and data_type) declared in the source's YAML.

    Whatever it stands for (the table itself, the table with its missing columns added, or an empty
    stand-in), the macro emits `<relation> as <alias>`, the alias defaulting to the table's name: a
    caller never writes its own `as`, so the same model compiles in every deployment shape. -#}
{% macro conformed_source(source_name, table_name, alias=none) %}
    {%- set alias = alias or table_name -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute -%}
        {{- return(relation ~ ' as ' ~ alias) -}}
    {%- endif -%}
    {%- set node = graph.sources.values() | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name) | first -%}
    {%- set declared = node.columns.values() | list -%}
    {%- set existing = adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
    {%- if existing is none -%}
        (select
        {%- for column in declared %}
            cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
        {%- endfor %}
        where 1 = 0) as {{ alias }}
    {%- else -%}
        {%- set present = adapter.get_columns_in_relation(existing) | map(attribute='name') | map('lower') | list -%}
        {%- set missing = [] -%}
        {%- for column in declared if column.name | lower not in present -%}
            {%- do missing.append(column) -%}
        {%- endfor -%}
        {%- if missing | length == 0 -%}
            {{ existing }} as {{ alias }}
        {%- else -%}
            (select *,
            {%- for column in missing %}
                cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
            {%- endfor %}
            from {{ existing }}) as {{ alias }}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
