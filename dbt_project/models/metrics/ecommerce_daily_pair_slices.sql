{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('ecommerce', 'date') }}"
) }}
{#- The ecommerce metrics split by two of the pack's dimensions at once (pipelines/packs, a metric's
    `pairs`): one row per workspace, day, metric and pair of dimension values, in long form. The same
    cells as ecommerce_daily_slices (macros/ecommerce_slice_parts.sql), grouped by two dimensions
    instead of one, so summing a pair over its second dimension gives the first dimension's slice
    exactly, and over both the metric.
    - line amounts and units: product × country, product × customer_type, country × customer_type;
    - orders: country × customer_type.
    Each pair is stored once, in the order above (`dimension` first). Zero pairs are left out. -#}
-- depends_on: {{ ref('int_ecommerce_refresh_windows') }}
-- depends_on: {{ ref('int_ecommerce_refresh_days') }}
{%- set line_pairs = [('product', 'country'), ('product', 'customer_type'), ('country', 'customer_type')] %}
with {{ ecommerce_slice_parts() }},

line_pairs as (
    {%- for first, second in line_pairs %}
    select
        workspace_id,
        date,
        '{{ first }}' as dimension,
        {{ first }} as dimension_value,
        '{{ second }}' as second_dimension,
        {{ second }} as second_dimension_value,
        sum(gross_sales) as gross_sales,
        sum(discounts) as discounts,
        sum(refunds) as refunds,
        sum(units) as units
    from line_cells
    group by workspace_id, date, {{ first }}, {{ second }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

order_pairs as (
    select
        workspace_id,
        order_date as date,
        'country' as dimension,
        country as dimension_value,
        'customer_type' as second_dimension,
        customer_type as second_dimension_value,
        count(*) as orders
    from sold_orders
    group by workspace_id, order_date, country, customer_type
),

long_form as (
    {%- set measures = [
        ('line_pairs', 'gross_sales', 'gross_sales', none),
        ('line_pairs', 'discounts', 'discounts', none),
        ('line_pairs', 'refunds', 'refunds', none),
        ('line_pairs', 'net_sales', 'gross_sales - discounts - refunds', none),
        ('line_pairs', 'units', 'units', none),
        ('order_pairs', 'orders', 'orders', none),
    ] %}
    {{ slices_long_form(measures, pairs=true) }}
),

final as (
    {{ kept_slices('long_form', 'ecommerce') }}
)

select * from final
