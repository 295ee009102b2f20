{#- Per SaaS workspace: its timezone and reporting currency, when recorded history begins (the
    first sync: the earliest subscription version), and the last day the daily models run to. -#}
with workspaces as (
    select * from {{ ref('stg_reference__workspaces') }}
),

versions as (
    select
        workspace_id,
        min(valid_from_at) as first_synced_at,
        max(valid_from_at) as last_version_at
    from {{ ref('stg_stripe__subscription_versions') }}
    group by workspace_id
),

final as (
    select
        workspaces.workspace_id,
        workspaces.timezone,
        workspaces.reporting_currency,
        -- before this instant MRR is rebuilt from invoices; from it on, recorded history wins
        versions.first_synced_at,
        -- today in the workspace's timezone, or the newest version's day if that is later
        greatest(
            {{ local_date(current_instant(), 'workspaces.timezone') }},
            coalesce({{ local_date('versions.last_version_at', 'workspaces.timezone') }}, cast('1970-01-01' as date))
        ) as as_of_day
    from workspaces
    left join versions on versions.workspace_id = workspaces.workspace_id
)

select * from final
