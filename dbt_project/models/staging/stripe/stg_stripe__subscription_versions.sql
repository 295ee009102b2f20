{#- Recorded versions of each subscription (from the first sync on): one row per version, valid
    on valid_from_at <= t < valid_to_at (null = current). Versions are dated by their event's time. -#}
with source as (
    select * from {{ conformed_source('stripe', 'subscription_history') }}
),

renamed as (
    select
        workspace_id,
        id as subscription_id,
        valid_from,
        customer as customer_id,
        status,
        upper(currency) as currency,
        {{ epoch_to_timestamp('valid_from') }} as valid_from_at,
        {{ epoch_to_timestamp('valid_to') }} as valid_to_at,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('trial_end') }} as trial_ended_at,
        coalesce(cancel_at_period_end, false) as cancel_at_period_end,
        {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
        {{ epoch_to_timestamp('ended_at') }} as ended_at,
        cast(discounts as varchar) as discount_ids_json,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
