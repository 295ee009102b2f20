{#- Every workspace that lacks an FX rate it needs, both verticals: what the test
    fx_rate_for_every_conversion stores, with the reason, to fail those workspaces in Dagster
    (docs/operations.md). The metric tables read their own vertical's model, so neither depends on
    the other vertical's sources. -#}
select * from {{ ref('int_fx_rate_gaps_ecommerce') }}
union all
select * from {{ ref('int_fx_rate_gaps_saas') }}
