"""The refresh cadence the stages share: every 6 hours (UTC), each asset after its parents.

Every asset but the weekly ones (the report and its delivery) carries the `REFRESH` automation
condition, evaluated by the `refresh` sensor (pipelines/orchestration.py). At the tick it requests
ingestion for every workspace (one backfill); each dbt model follows once all its parents have
updated since the tick and no parent partition is still running, and each workspace's anomalies and
drivers follow the metric tables. (A single run could not do all this: it holds assets of one
partitions definition, and the dbt models are unpartitioned while ingestion and insights are per
workspace.) Freshness checks say when a table missed a refresh.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

REFRESH_CRON = "0 */6 * * *"  # the seed's cadence; UTC
STAGE_TAG = "abos/stage"  # on the stage jobs and their runs

# Requested once per tick, after every parent updated since the tick and none is still running. An
# unpartitioned dbt model therefore waits for all its workspaces' ingestion (any partition in progress
# blocks it), and per-workspace insights wait for the dbt models they read.
REFRESH = (dg.AutomationCondition.on_cron(REFRESH_CRON) & ~dg.AutomationCondition.any_deps_in_progress()).with_label(
    f"refresh on {REFRESH_CRON} (UTC), after its parents"
)


def on_refresh(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """`assets` with the `REFRESH` automation condition."""
    return dg.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=REFRESH), assets)


def stage_job(name: str, selection: dg.AssetSelection, description: str) -> dg.UnresolvedAssetJobDefinition:
    """A stage's job: what `abos run` launches for the stage (pipelines/run.py, `stage_runs`), so the
    Runs page names the stage. Other jobs over the same assets (the webhook jobs) are not stages."""
    return dg.define_asset_job(name, selection=selection, description=description, tags={STAGE_TAG: name})


def freshness_checks(keys: Sequence[dg.AssetKey], fresh_for: timedelta) -> Sequence[dg.AssetChecksDefinition]:
    """Checks that fail when one of `keys` was last updated more than `fresh_for` ago (the
    `freshness_checks` sensor evaluates them)."""
    if not keys:
        return []
    with warnings.catch_warnings():
        # FreshnessPolicy supersedes these checks, but needs an instance flag and reports no check
        # result; checks show pass/fail on every asset page and in the asset graph.
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_last_update_freshness_checks(assets=keys, lower_bound_delta=fresh_for)

