{#- A model's key, its required columns and its columns' accepted values in one test (one query and
    one dbt node per model, instead of one per column: dbt's per-node work is most of a build's cost
    at small scale; docs/performance.md). Fails on each key shared by two rows (the values of
    `columns`, a composite primary key; `failure` 'rows share this key'), on each row with a null in
    one of `not_null` (`failure` 'null <column>', the first null column), and on each row whose
    column in `accepted_values` ({column: [values]}) holds a value not listed (`failure` 'value not
    accepted: <column>'; a null is not checked there, as dbt's accepted_values does not). -#}
{% test unique_combination(model, columns, not_null=[], accepted_values={}) %}
{%- set checks = unique_combination_checks(not_null, accepted_values) -%}
{{ adapter.dispatch('unique_combination_failures')(model, columns, checks) }}
{% endtest %}

{#- The checks of a row as (condition, failure) pairs: a null in one of `not_null`, a value of
    `accepted_values` not listed. -#}
{% macro unique_combination_checks(not_null, accepted_values) -%}
{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append((column ~ ' is null', 'null ' ~ column)) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set listed = [] -%}
    {%- for value in values -%}{%- do listed.append("'" ~ value ~ "'") -%}{%- endfor -%}
    {%- do checks.append((column ~ ' not in (' ~ listed | join(', ') ~ ')', 'value not accepted: ' ~ column)) -%}
{%- endfor -%}
{{ return(checks) }}
{%- endmacro %}

{#- The failing rows of `relation`: each key shared by two rows, each row failing a check. -#}
{% macro default__unique_combination_failures(relation, columns, checks) -%}
select {{ columns | join(', ') }}, cast('rows share this key' as varchar) as failure, count(*) as rows_sharing_key
from {{ relation }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- if checks %}

union all

select {{ columns | join(', ') }},
    cast(case {% for condition, failure in checks %}when {{ condition }} then '{{ failure }}' {% endfor %}end as varchar) as failure,
    1 as rows_sharing_key
from {{ relation }}
where {% for condition, _ in checks %}{{ condition }}{{ ' or ' if not loop.last }}{% endfor %}
{%- endif %}
{%- endmacro %}

{#- DuckDB and Postgres: the same rows, from one read of the table when nothing fails. Grouping the
    key's columns (text among them) costs more than grouping one 64-bit hash of the key: the rows
    whose key's hash is shared by another row, or that fail a check, are the candidates, and the
    test proper (the default's) runs on them alone. A key shared by two rows has a shared hash, so
    every row of such a key is a candidate, and two different keys of one hash (a collision, or on
    Postgres `concat_ws`' separator inside a value) are told apart by the exact grouping. When there
    is no candidate, the second read of the table finds nothing to join. On Postgres a hash
    aggregate of millions of keys (the segments' 17 M rows at scale 1) spilled to disk in batches,
    so its hashes are sorted first (a group aggregate, no spill of wide rows): docs/performance.md,
    "Postgres at scale 1: the key tests by hash"; on DuckDB the hash aggregate of the key's columns
    was the test's largest cost: "The full `dbt build` on DuckDB: the key tests by hash". -#}
{% macro duckdb__unique_combination_failures(relation, columns, checks) -%}
{{ unique_combination_failures_by_hash(relation, columns, checks, 'hash(' ~ columns | join(', ') ~ ')', sorted=false) }}
{%- endmacro %}

{% macro postgres__unique_combination_failures(relation, columns, checks) -%}
{{ unique_combination_failures_by_hash(relation, columns, checks,
                                       'hashtextextended(concat_ws(' ~ "'|', " ~ columns | join(', ') ~ '), 0)', sorted=true) }}
{%- endmacro %}

{% macro unique_combination_failures_by_hash(relation, columns, checks, key_hash, sorted) -%}
{%- set failed -%}
    {%- if checks -%}
    case when {% for condition, _ in checks %}{{ condition }}{{ ' or ' if not loop.last }}{% endfor %} then 1 else 0 end
    {%- else -%}
    0
    {%- endif -%}
{%- endset -%}
with candidate_hashes as (
    select key_hash
    {%- if sorted %}
    -- sorted: a group aggregate over the sorted hashes, not a hash aggregate spilling to disk
    from (select {{ key_hash }} as key_hash, {{ failed }} as failed from {{ relation }} order by 1) as hashed
    {%- else %}
    from (select {{ key_hash }} as key_hash, {{ failed }} as failed from {{ relation }}) as hashed
    {%- endif %}
    group by key_hash
    having count(*) > 1 or max(failed) = 1
),

candidates as (
    select * from {{ relation }}
    where {{ key_hash }} in (select key_hash from candidate_hashes)
)

{{ default__unique_combination_failures('candidates', columns, checks) }}
{%- endmacro %}
