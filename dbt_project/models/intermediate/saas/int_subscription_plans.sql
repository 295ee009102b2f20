{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ saas_delete_rebuilt('int_subscription_plans') }}"
) }}
{#- Each subscription's plan, the dimension saas_daily_slices splits by: the product of its largest
    current item (by monthly amount). Incremental (macros/incremental_changes.sql): a run recomputes
    the subscriptions int_saas_changed_subscriptions lists. -#}
-- depends_on: {{ ref('int_saas_changed_subscriptions') }}
with items as (
    select * from {{ ref('subscription_items') }} as items
    where {{ saas_rebuilt_rows('int_subscription_plans', 'items') }}
),

ranked_items as (
    select
        workspace_id,
        subscription_id,
        product_name,
        row_number() over (
            partition by workspace_id, subscription_id
            order by monthly_amount desc, product_name
        ) as item_rank
    from items
),

final as (
    select workspace_id, subscription_id, coalesce(product_name, '(none)') as plan
    from ranked_items
    where item_rank = 1
)

select * from final
