{#- A model's key and its required columns in one test (one query and one dbt node per model,
    instead of one per column: dbt's per-node work is most of a build's cost at small scale;
    docs/performance.md). Fails on each key shared by two rows (the values of `columns`, a composite
    primary key; `failure` 'rows share this key') and on each row with a null in one of `not_null`
    (`failure` 'null <column>', the first null column). -#}
{% test unique_combination(model, columns, not_null=[]) %}
select {{ columns | join(', ') }}, cast('rows share this key' as varchar) as failure, count(*) as rows_sharing_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- if not_null %}

union all

select {{ columns | join(', ') }},
    cast(case {% for column in not_null %}when {{ column }} is null then 'null {{ column }}' {% endfor %}end as varchar) as failure,
    1 as rows_sharing_key
from {{ model }}
where {% for column in not_null %}{{ column }} is null{{ ' or ' if not loop.last }}{% endfor %}
{%- endif %}
{% endtest %}
