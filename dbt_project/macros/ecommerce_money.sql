{#- Money arithmetic that gives the same digits on DuckDB and Postgres.

    DuckDB divides decimals in double precision while Postgres divides numerics exactly, so a plain
    `a / b` can round differently in the last place (a day's sales over 8 orders often ends in a
    half: 1234.57 / 8 = 154.32125). -#}

{#- `numerator / denominator` rounded half up to `scale` decimals; null when the denominator is 0.
    Exact while numerator × 10^scale is a whole number below 2^51 (money with at most `scale`
    decimals): the quotient is taken in integers, (2x + n) / 2n floored, where double precision is
    exact on both databases. -#}
{% macro ecommerce_divide_half_up(numerator, denominator, scale=4) -%}
    case when ({{ denominator }}) <> 0 then
        cast(floor(
            (2 * cast(({{ numerator }}) * {{ 10 ** scale }} as double precision) + ({{ denominator }}))
            / (2 * cast(({{ denominator }}) as double precision))
        ) as decimal(38, 0)) * cast({{ '0.' ~ '0' * (scale - 1) ~ '1' }} as decimal(38, {{ scale }}))
    end
{%- endmacro %}
