{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ refresh_days_delete('saas', 'date') }}"
) }}
{#- The SaaS metrics split by two of the pack's dimensions at once (pipelines/packs, a metric's
    `pairs`): one row per workspace, day, metric and pair of dimension values, in long form, from
    the same parts as saas_daily_slices (macros/saas_slice_parts.sql):
    - plan × billing_currency: MRR, ARR, active, new and churned subscriptions (the per plan and
      currency running sums saas_daily_slices adds up by plan) and the movements;
    - movement_type × plan, movement_type × billing_currency: net new MRR's five movements.
    Summing a pair over its second dimension gives the first dimension's slice (counts exactly;
    money to the 6 decimals each row is stored with, the parts being converted to 9). Each pair is stored once, in the order above (`dimension` first). Zero pairs are left out. -#}
-- depends_on: {{ ref('int_saas_refresh_windows') }}
{%- set movement_pairs = [('plan', 'billing_currency'), ('movement_type', 'plan'), ('movement_type', 'billing_currency')] %}
with {{ saas_slice_parts() }},

stock_pairs as (
    select
        workspace_id,
        date_day as date,
        'plan' as dimension,
        plan as dimension_value,
        'billing_currency' as second_dimension,
        currency as second_dimension_value,
        mrr,
        active_subscriptions,
        new_subscriptions,
        churned_subscriptions
    from plan_days_converted
),

movement_pairs as (
    {%- for first, second in movement_pairs %}
    select
        workspace_id,
        date_day as date,
        '{{ first }}' as dimension,
        {{ first }} as dimension_value,
        '{{ second }}' as second_dimension,
        {{ second }} as second_dimension_value,
        {{ saas_movement_sums() }}
    from movement_parts
    group by workspace_id, date_day, {{ first }}, {{ second }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

long_form as (
    {{ slices_long_form(saas_slice_measures('stock_pairs', 'movement_pairs'), pairs=true) }}
),

final as (
    {{ kept_slices('long_form', 'saas') }}
)

select * from final
