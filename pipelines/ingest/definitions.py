"""The ingest stage's Definitions: the raw tables of every connector and the exchange rates, on the
refresh cadence, with freshness checks, the dlt resource, and one job per source (`ingest_shopify`,
`ingest_stripe`, `ingest_fx`: what `abos run` launches, so the Runs page names the source)."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from dagster_dlt import DagsterDltResource

from pipelines.ingest.assets import fx_assets, ingest_assets
from pipelines.ingest.pipeline import Alert
from pipelines.ingest.sync import SOURCES, source_builder
from pipelines.refresh import freshness_checks, on_refresh, stage_job
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces

# A refresh lands within two hours of its tick; past that, the data missed a refresh.
RAW_TABLES_FRESH_FOR = timedelta(hours=8)
OWNER = "team:data-engineering"  # who to ask about a raw table (the asset's Owners in the UI)


def defs(workspaces: Workspaces, settings: Settings, alert: Alert) -> dg.Definitions:
    """Ingestion for the workspaces that use each connector; `alert` tells the operator about quarantined records."""
    connectors = (ingest_assets(source, source_builder(source), workspaces, settings, alert) for source in SOURCES)
    assets = on_refresh([fx_assets(settings), *(assets for assets in connectors if assets is not None)])
    assets = dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=[OWNER]), assets)
    raw = [spec.key for a in assets for spec in a.specs if (spec.group_name or "").startswith("ingest_")]
    groups = sorted({spec.group_name for a in assets for spec in a.specs})
    jobs = [stage_job(group, dg.AssetSelection.groups(group),
                      f"Load the {group.removeprefix('ingest_')} tables of one workspace (one partition per "
                      "run), or the shared ones.")
            for group in groups]
    return dg.Definitions(assets=assets, asset_checks=freshness_checks(raw, RAW_TABLES_FRESH_FOR), jobs=jobs,
                          resources={"dlt": DagsterDltResource()})
