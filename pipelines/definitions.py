"""THE Dagster Definitions: assembles every pipeline stage (ingest, transform, insights, deliver).

Tenants come from `workspaces.yaml` (ABOS_WORKSPACES) and the warehouse from ABOS_WAREHOUSE_URL,
both read once here through settings.
"""

import functools

import dagster as dg
from dagster_dlt import DagsterDltResource

from pipelines.deliver.alerts import alert_operator
from pipelines.deliver.assets import deliver_assets
from pipelines.ingest.assets import fx_assets, ingest_assets
from pipelines.ingest.sync import source_builder
from pipelines.insights.assets import insights_assets
from pipelines.orchestration import orchestrate
from pipelines.privacy_jobs import privacy_definitions
from pipelines.settings import load_settings
from pipelines.transform.assets import dbt_resource, transform_assets
from pipelines.workspaces import load_workspaces

settings = load_settings()
workspaces = load_workspaces(settings.workspaces_file)

ingest = [
    fx_assets(settings),  # exchange rates, shared by every workspace
    *(assets
      for assets in (ingest_assets(source, source_builder(source), workspaces, settings,
                                   functools.partial(alert_operator, settings)) for source in ("shopify", "stripe"))
      if assets is not None),
]

defs = dg.Definitions.merge(
    # The stages' assets, on their cadence, with schedules, sensors and checks (pipelines/orchestration.py).
    orchestrate([*ingest, *transform_assets(workspaces, settings), *insights_assets(workspaces, settings),
                 *deliver_assets(workspaces, settings)],
                workspaces, settings),
    dg.Definitions(resources={"dlt": DagsterDltResource(), "dbt": dbt_resource(),
                              "warehouse": settings.warehouse_resource()}),
    privacy_definitions(settings),
)
