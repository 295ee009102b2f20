"""The transform stage's Definitions: the workspaces reference table and the dbt models, on the
refresh cadence, with freshness checks on the metric tables, the dbt resource, and the `transform` job."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from pipelines.refresh import freshness_checks, on_refresh, stage_job
from pipelines.settings import Settings
from pipelines.transform.assets import dbt_resource, transform_assets
from pipelines.workspaces import Workspaces

# The metric tables are built after ingestion: a refresh lands within three hours of its tick.
METRIC_TABLES_FRESH_FOR = timedelta(hours=9)


def defs(workspaces: Workspaces, settings: Settings) -> dg.Definitions:
    """dbt over every workspace's raw tables."""
    assets = on_refresh(transform_assets(workspaces, settings))
    metrics = [spec.key for a in assets for spec in a.specs if spec.group_name == "metrics"]
    job = stage_job("transform", dg.AssetSelection.assets(*assets),
                    "Load the workspaces table and `dbt build` every model, for all workspaces.")
    return dg.Definitions(assets=assets, asset_checks=freshness_checks(metrics, METRIC_TABLES_FRESH_FOR), jobs=[job],
                          resources={"dbt": dbt_resource()})
