{#- A model's key, its required columns and its columns' accepted values in one test (one query and
    one dbt node per model, instead of one per column: dbt's per-node work is most of a build's cost
    at small scale; docs/performance.md). Fails on each key shared by two rows (the values of
    `columns`, a composite primary key; `failure` 'rows share this key'), on each row with a null in
    one of `not_null` (`failure` 'null <column>', the first null column), and on each row whose
    column in `accepted_values` ({column: [values]}) holds a value not listed (`failure` 'value not
    accepted: <column>'; a null is not checked there, as dbt's accepted_values does not). -#}
{% test unique_combination(model, columns, not_null=[], accepted_values={}) %}
{%- set checks = [] -%}
{%- for column in not_null -%}
    {%- do checks.append((column ~ ' is null', 'null ' ~ column)) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set listed = [] -%}
    {%- for value in values -%}{%- do listed.append("'" ~ value ~ "'") -%}{%- endfor -%}
    {%- do checks.append((column ~ ' not in (' ~ listed | join(', ') ~ ')', 'value not accepted: ' ~ column)) -%}
{%- endfor -%}
select {{ columns | join(', ') }}, cast('rows share this key' as varchar) as failure, count(*) as rows_sharing_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- if checks %}

union all

select {{ columns | join(', ') }},
    cast(case {% for condition, failure in checks %}when {{ condition }} then '{{ failure }}' {% endfor %}end as varchar) as failure,
    1 as rows_sharing_key
from {{ model }}
where {% for condition, _ in checks %}{{ condition }}{{ ' or ' if not loop.last }}{% endfor %}
{%- endif %}
{% endtest %}
