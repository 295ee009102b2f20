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

{% macro duckdb__ecommerce_allocated_discount(allocations) -%}
    coalesce((
        select sum(cast(amount as decimal(38, 9)))
        from unnest(json_extract_string({{ allocations }}, '$[*].allocatedAmountSet.shopMoney.amount')) as allocation(amount)
    ), 0)
{%- endmacro %}
