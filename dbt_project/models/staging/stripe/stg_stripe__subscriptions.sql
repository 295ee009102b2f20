{#- Subscriptions in their current state, every status. Canceled ones keep their row. -#}
with source as (
    select * from {{ conformed_source('stripe', 'subscriptions') }}
),

renamed as (
    select
        workspace_id,
        id as subscription_id,
        customer as customer_id,
        status,
        upper(currency) as currency,
        {{ epoch_to_timestamp('created') }} as created_at,
        {{ epoch_to_timestamp('start_date') }} as started_at,
        {{ epoch_to_timestamp('trial_start') }} as trial_started_at,
        {{ epoch_to_timestamp('trial_end') }} as trial_ended_at,
        coalesce(cancel_at_period_end, false) as cancel_at_period_end,
        {{ epoch_to_timestamp('cancel_at') }} as cancel_at,
        {{ epoch_to_timestamp('canceled_at') }} as canceled_at,
        {{ epoch_to_timestamp('ended_at') }} as ended_at,
        cancellation_details__reason as cancellation_reason,
        -- the ids of the subscription's discounts, as JSON text: matched by '"<discount id>"'
        cast(discounts as varchar) as discount_ids_json,
        -- dlt's load id (the load's start in unix seconds): which load brought the row
        cast(_dlt_load_id as double precision) as load_epoch
    from source
)

select * from renamed
