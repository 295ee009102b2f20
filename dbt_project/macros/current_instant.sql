{#- The current instant (a timestamp with time zone) every model takes "today" from: dbt's clock, or
    the dbt variable `abos_now` when it is set, an ISO timestamp in UTC ('2026-07-01T03:59:59Z'; any
    explicit offset is converted to UTC). Builds that are compared (DuckDB against Postgres, an
    incremental build against a full refresh) pin it, so the real clock crossing a workspace's
    midnight between them cannot move its as-of day (docs/testing.md, "A pinned now"). -#}
{% macro current_instant() -%}
    {%- set pinned = var('abos_now', none) -%}
    {%- if pinned is none or pinned == '' -%}
        {{ dbt.current_timestamp() }}
    {%- else -%}
        {#- YAML's --vars read an unquoted timestamp as a datetime already -#}
        {%- set text = pinned if pinned is string else (pinned.isoformat() if pinned.isoformat is defined else '') -%}
        {%- set parsed = none -%}
        {%- if text -%}
            {%- set parsed = modules.datetime.datetime.fromisoformat(text) if modules.re.fullmatch(
                '\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,6})?)?(Z|[+-]\\d{2}:?\\d{2})', text) else none -%}
        {%- endif -%}
        {%- if parsed is none or parsed.tzinfo is none -%}
            {{ exceptions.raise_compiler_error(
                "the dbt variable abos_now must be an ISO timestamp with its UTC offset, such as "
                ~ "'2026-07-01T03:59:59Z'; got " ~ (pinned | string)) }}
        {%- endif -%}
        cast('{{ parsed.astimezone(modules.pytz.utc).isoformat(sep=" ") }}' as timestamp with time zone)
    {%- endif -%}
{%- endmacro %}
