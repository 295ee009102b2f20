{#- Whole-number arithmetic that gives the same digits on DuckDB and Postgres, for divisions that
    must be exact: DuckDB divides decimals in double precision (about 16 significant digits) while
    Postgres divides numerics exactly, so an exact quotient is taken in whole numbers instead. -#}

{#- An integral decimal expression as a whole number: DuckDB's 128-bit HUGEINT (it stops with an
    overflow error beyond about 1.7 × 10^38, never a wrong digit), Postgres' numeric. -#}
{% macro whole_number(expression) -%}
    {{ return(adapter.dispatch('whole_number')(expression)) }}
{%- endmacro %}

{% macro default__whole_number(expression) -%}
    cast({{ expression }} as numeric(38, 0))
{%- endmacro %}

{% macro duckdb__whole_number(expression) -%}
    cast({{ expression }} as hugeint)
{%- endmacro %}

{#- `numerator` div `denominator`, two non-negative whole numbers (`whole_number`): the quotient
    rounded down. -#}
{% macro whole_div(numerator, denominator) -%}
    {{ return(adapter.dispatch('whole_div')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__whole_div(numerator, denominator) -%}
    div({{ numerator }}, {{ denominator }})
{%- endmacro %}

{% macro duckdb__whole_div(numerator, denominator) -%}
    (({{ numerator }}) // ({{ denominator }}))
{%- endmacro %}

{#- `numerator` / `denominator`, two non-negative whole numbers (`whole_number`), rounded half up
    to a whole number: (2 × numerator + denominator) div (2 × denominator). -#}
{% macro whole_div_half_up(numerator, denominator) -%}
    {{ whole_div('2 * ' ~ numerator ~ ' + ' ~ denominator, '2 * ' ~ denominator) }}
{%- endmacro %}
