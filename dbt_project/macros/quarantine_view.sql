{#- The open and resolved quarantine records of one object table (raw `<source>.quarantine_<table>`,
    written by the connectors: pipelines/ingest/quarantine.py), as `quarantine.<source>_<table>`. -#}
{% macro quarantine_view(source_name, table_name) %}
with source as (
    select * from {{ conformed_source(source_name, 'quarantine_' ~ table_name) }}
),

final as (
    select
        workspace_id,
        '{{ source_name }}' as source,
        '{{ table_name }}' as object_table,
        object_id,
        record_table,
        record_id,
        field,
        reason,
        value,
        raw_record,
        object_time,
        first_seen_at,
        last_seen_at,
        resolved_at,
        resolved_at is null as is_open
    from source
)

select * from final
{% endmacro %}
