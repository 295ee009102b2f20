{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('ecommerce', 'date') }}"
) }}
{#- The ecommerce metrics of ecommerce_daily_metrics split by the pack's dimensions (pipelines/packs):
    one row per workspace, day, metric, dimension and dimension value, in long form. Same
    definitions as docs/metrics.md: days in the workspace's timezone, amounts in its reporting
    currency, cancelled orders not sold, refunds on the refund's own day. The slices of a metric
    along one dimension add up to the metric (to 4 decimals per cell where money is converted: each
    day, product, country and customer type, macros/ecommerce_slice_parts.sql); ecommerce_daily_pair_slices
    splits the same cells by two dimensions at once, so its pairs add up to these slices exactly.
    - product (line amounts and units; refunds by the refunded line's product),
    - country (the order's shipping country), customer_type (the order's: new or returning),
    - orders by country and customer_type; new and returning customers by country (a person
      counts once a day, under the first country of that day's orders).
    AOV is not sliced: its parts (gross_sales, discounts, orders) are. Zero slices are left out. -#}
-- depends_on: {{ ref('int_ecommerce_refresh_windows') }}
-- depends_on: {{ ref('int_ecommerce_refresh_days') }}
with {{ ecommerce_slice_parts() }},

line_slices_converted as (
    {%- for dimension in ['product', 'country', 'customer_type'] %}
    select
        workspace_id,
        date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        sum(gross_sales) as gross_sales,
        sum(discounts) as discounts,
        sum(refunds) as refunds,
        sum(units) as units
    from line_cells
    group by workspace_id, date, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

order_slices as (
    {%- for dimension in ['country', 'customer_type'] %}
    select
        workspace_id,
        order_date as date,
        '{{ dimension }}' as dimension,
        {{ dimension }} as dimension_value,
        count(*) as orders
    from sold_orders
    group by workspace_id, order_date, {{ dimension }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

customer_slices as (
    select
        workspace_id,
        date,
        'country' as dimension,
        country as dimension_value,
        sum(is_new) as new_customers,
        sum(is_returning) as returning_customers
    from person_days
    group by workspace_id, date, country
),

long_form as (
    {%- set measures = [
        ('line_slices_converted', 'gross_sales', 'gross_sales', none),
        ('line_slices_converted', 'discounts', 'discounts', none),
        ('line_slices_converted', 'refunds', 'refunds', none),
        ('line_slices_converted', 'net_sales', 'gross_sales - discounts - refunds', none),
        ('line_slices_converted', 'units', 'units', none),
        ('order_slices', 'orders', 'orders', none),
        ('customer_slices', 'new_customers', 'new_customers', none),
        ('customer_slices', 'returning_customers', 'returning_customers', none),
    ] %}
    {{ slices_long_form(measures) }}
),

final as (
    {{ kept_slices('long_form', 'ecommerce') }}
)

select * from final
