{#- Custom generic test: the column is never below zero (NULL passes). -#}
{% test non_negative(model, column_name) %}
select {{ adapter.quote(column_name) }}
from {{ model }}
where {{ adapter.quote(column_name) }} < 0
{% endtest %}
