{#- A dbt var that must be a date (YYYY-MM-DD), as a SQL date literal. Anything else stops
    the compilation, so a var can never smuggle SQL into a model. -#}
{% macro date_var(name) %}
    {%- set value = var(name) | string -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a date like 2024-01-31, got " ~ value) }}
    {%- endif -%}
    date '{{ value }}'
{%- endmacro %}
