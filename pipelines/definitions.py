"""THE Dagster Definitions: the stages' own Definitions (ingest, transform, insights, deliver), merged.

Each stage package owns its assets, checks, schedules and sensors (`pipelines/<stage>/definitions.py`);
`pipelines/orchestration.py` adds the sensors that watch them all. Tenants come from
`workspaces.yaml` (ABOS_WORKSPACES) and the warehouse from ABOS_WAREHOUSE_URL, both read once here
through settings; every stage shares the one `warehouse` resource.
"""

import functools

import dagster as dg

from pipelines import orchestration, privacy_jobs, webhook_jobs
from pipelines.deliver import definitions as deliver
from pipelines.deliver.alerts import alert_operator
from pipelines.ingest import definitions as ingest
from pipelines.insights import definitions as insights
from pipelines.settings import Settings, load_settings
from pipelines.transform import definitions as transform
from pipelines.workspaces import Workspaces, load_workspaces


def build(settings: Settings, workspaces: Workspaces) -> dg.Definitions:
    """The Definitions for these settings and tenants (the benchmark's tenants phase passes its own)."""
    stages = [
        ingest.defs(workspaces, settings, alert=functools.partial(alert_operator, settings)),
        transform.defs(workspaces, settings),
        insights.defs(workspaces, settings),
        deliver.defs(workspaces, settings),
    ]
    return dg.Definitions.merge(
        *stages,
        orchestration.defs(stages, settings),
        privacy_jobs.privacy_definitions(settings),
        webhook_jobs.webhook_definitions(stages, workspaces, settings),
        dg.Definitions(resources={"warehouse": settings.warehouse_resource()}),
    )


settings = load_settings()
workspaces = load_workspaces(settings.workspaces_file)
defs = build(settings, workspaces)
