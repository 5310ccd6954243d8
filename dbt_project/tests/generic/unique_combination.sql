{#- Custom generic test: no two rows share the values of `columns` (a composite key). -#}
{% test unique_combination(model, columns) %}
select {% for column in columns %}{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor %}, count(*) as rows
from {{ model }}
group by {% for column in columns %}{{ adapter.quote(column) }}{{ ", " if not loop.last }}{% endfor %}
having count(*) > 1
{% endtest %}
