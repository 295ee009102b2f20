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

{#- `numerator / denominator` of two whole numbers (`whole_number`), `denominator` positive, rounded
    half away from zero to a whole number: (2|n| + d) div 2d, with n's sign. -#}
{% macro whole_quotient_rounded(numerator, denominator) -%}
    {{ return(adapter.dispatch('whole_quotient_rounded')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__whole_quotient_rounded(numerator, denominator) -%}
    (case when {{ numerator }} < 0 then -1 else 1 end
        * div(2 * abs({{ numerator }}) + {{ denominator }}, 2 * {{ denominator }}))
{%- endmacro %}

{% macro duckdb__whole_quotient_rounded(numerator, denominator) -%}
    (case when {{ numerator }} < 0 then -1 else 1 end
        * ((2 * abs({{ numerator }}) + {{ denominator }}) // (2 * {{ denominator }})))
{%- endmacro %}
