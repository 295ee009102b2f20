"""One connector's sync for one workspace outside Dagster (`abos ingest`, tests, benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.ingest.pipeline import Alert, SyncStats, dlt_pipeline, report_quarantine, run_steps, workspace_error
from pipelines.ingest.shopify import shopify_source
from pipelines.ingest.stripe import stripe_source
from pipelines.settings import Settings

SOURCES = {"shopify": shopify_source, "stripe": stripe_source}


def source_builder(source: str):
    """The connector's source function: `shopify_source` or `stripe_source`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use shopify or stripe")
    return SOURCES[source]


@dataclass
class SyncResult:
    load_info: object
    stats: SyncStats
    cursor_before: dict
    cursor_after: dict


def sync(source: str, workspace, settings: Settings, alert: Alert | None = None) -> SyncResult:
    """Run one connector for one workspace outside Dagster (`abos ingest`, tests, benchmarks).

    Same steps as the Dagster asset (`run_steps`): state is restored from the destination first, so a
    missing local pipeline directory changes nothing. `alert` tells the operator about quarantined records.
    """
    stats = SyncStats()
    dlt_source = source_builder(source)(workspace, settings=settings, stats=stats)
    pipeline = dlt_pipeline(source, workspace.id, settings)
    try:
        steps = run_steps(pipeline, dlt_source, settings.warehouse, stats)
    except Exception as exc:
        cause = workspace_error(exc)
        if cause is not None:
            raise cause from None
        raise
    after = dict(pipeline.state.get("sources", {}).get(source, {}))
    report_quarantine(workspace.id, source, stats, alert)
    return SyncResult(steps.load_info, stats, steps.before, after)
