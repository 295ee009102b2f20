"""The insights stage's Definitions: anomalies, their drivers, forecasts and opportunities on the
refresh cadence, and the weekly report (scheduled with its delivery, pipelines/deliver/definitions.py)."""

from __future__ import annotations

import dagster as dg

from pipelines.insights.assets import insights_assets
from pipelines.refresh import on_refresh
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces


def defs(workspaces: Workspaces, settings: Settings) -> dg.Definitions:
    """The insights of every workspace."""
    *refreshed, reports = insights_assets(workspaces, settings)
    return dg.Definitions(assets=[*on_refresh(refreshed), reports])
