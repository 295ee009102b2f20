{#- Every currency a workspace converts has a rate on every day it is needed. A gap fails only its
    workspace: severity warn keeps the other workspaces' models building, and the stored failures
    (audit.fx_rate_for_every_conversion, with workspace_id and reason) fail that workspace's
    partition in Dagster (pipelines/transform/health.py). -#}
{{ config(severity='warn', store_failures=true) }}
select workspace_id, model, reason from {{ ref('int_fx_rate_gaps') }}
