{#- Fails when two rows share the same values in all of `columns` (a composite primary key). -#}
{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_sharing_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
