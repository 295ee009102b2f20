{#- A ratio metric of the registry (metric_registry, generated from pipelines/packs), computed from
    its numerator and denominator columns where the model has them: null when the denominator is
    not positive, else exact and rounded half away from zero once to `scale` decimals, as
    decimal(38, `scale`), the same digits on DuckDB and Postgres (the quotient is taken in whole
    numbers, whole_numbers.sql: DuckDB divides decimals in double precision, which for ARPA over
    an MRR of 123,456,789,012.345678 IDR and 7 customers is one unit off in the 6th decimal). Ratios
    are declared once, in the registry; the models only choose the decimals. Both parts carry at
    most `parts_scale` decimals (9 unless the model keeps more: revenue retention's sums have 12).
    Money ratios (AOV) round the same way: one exact division for every ratio. -#}
{% macro metric_ratio(name, scale=6, parts_scale=9) -%}
    {%- set entry = metric_registry()[name] -%}
    {{ exact_ratio(entry.numerator, entry.denominator, scale, parts_scale) }}
{%- endmacro %}

{#- `numerator` / `denominator` (SQL expressions of at most `parts_scale` decimals: a part with more
    is rounded to that many first), exact, rounded half away from zero to `scale` decimals, as
    decimal(38, `scale`); null unless the denominator is positive. In units of 10^-parts_scale
    both are whole numbers n and d; the result in units of 10^-scale is n × 10^scale / d, rounded
    half up on |n| and given n's sign. 2 × n × 10^scale must stay below 1.7 × 10^38 (DuckDB's
    HUGEINT stops with an overflow error beyond it): with 12 and 6 decimals, a numerator below
    8.5 × 10^19. -#}
{% macro exact_ratio(numerator, denominator, scale=6, parts_scale=9) -%}
    {%- set unit = '1' ~ '0' * parts_scale -%}
    {%- set n = whole_number('abs(cast((' ~ numerator ~ ') as decimal(38, ' ~ parts_scale ~ '))) * ' ~ unit) -%}
    {%- set d = whole_number('cast((' ~ denominator ~ ') as decimal(38, ' ~ parts_scale ~ ')) * ' ~ unit) -%}
    case when ({{ denominator }}) > 0 then cast(
        case when ({{ numerator }}) < 0 then -1 else 1 end * {{ whole_div_half_up(n ~ ' * ' ~ 10 ** scale, d) }}
        * cast({{ '1' if scale == 0 else '0.' ~ '0' * (scale - 1) ~ '1' }} as decimal(38, {{ scale }}))
    as decimal(38, {{ scale }})) end
{%- endmacro %}
