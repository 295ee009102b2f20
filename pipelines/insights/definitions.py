"""The insights stage's Definitions: anomalies, their drivers, forecasts and opportunities on the
refresh cadence (the `insights` job: one step over the workspaces of its run, a range of partitions),
and the weekly report (scheduled with its
delivery in the `weekly_report` job, pipelines/deliver/definitions.py)."""

from __future__ import annotations

import dagster as dg

from pipelines.insights.assets import insights_assets
from pipelines.refresh import on_refresh, stage_job
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces


OWNER = "team:analytics"  # who to ask about an insight or a report (the asset's Owners in the UI)


def defs(workspaces: Workspaces, settings: Settings) -> dg.Definitions:
    """The insights of every workspace."""
    owned = dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=[OWNER]),
                               insights_assets(workspaces, settings))
    *refreshed, reports = owned
    refreshed = on_refresh(refreshed)
    job = stage_job("insights", dg.AssetSelection.assets(*refreshed),
                    "Anomalies, their drivers, forecasts, opportunities and customer values of the workspaces "
                    "of the run (one, or a range: each workspace's failure is its own).")
    return dg.Definitions(assets=[*refreshed, reports], jobs=[job])
