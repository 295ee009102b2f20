{#- The total of a Shopify line's `discountAllocations` (a JSON list, as dlt stores it), in shop money.
    JSON access differs between the warehouses, so this dispatches; both return 0 for no allocations. -#}
{% macro ecommerce_allocated_discount(allocations) -%}
    {{ return(adapter.dispatch('ecommerce_allocated_discount')(allocations)) }}
{%- endmacro %}

{% macro default__ecommerce_allocated_discount(allocations) -%}
    coalesce((
        select sum(cast(allocation -> 'allocatedAmountSet' -> 'shopMoney' ->> 'amount' as decimal(38, 9)))
        from jsonb_array_elements(cast({{ allocations }} as jsonb)) as allocation
    ), 0)
{%- endmacro %}

{#- DuckDB: a list expression, not a subquery over the unnested list. A correlated subquery is
    decorrelated into a join that materializes the whole staging relation first (every raw line and
    its semi-join to the orders), so no filter or join of a reader reached the raw table: the
    order_lines mart rebuilding a few changed orders still read and summed every line's allocations
    (docs/performance.md, "dbt after a small change: the whole tables read by statement"). -#}
{% macro duckdb__ecommerce_allocated_discount(allocations) -%}
    coalesce(list_sum(cast(json_extract_string({{ allocations }}, '$[*].allocatedAmountSet.shopMoney.amount')
        as decimal(38, 9)[])), 0)
{%- endmacro %}
