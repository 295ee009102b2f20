"""One connector's sync for one workspace outside Dagster (`abos ingest`, tests, benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipelines.ingest.pipeline import Alert, SyncStats, dlt_pipeline, report_quarantine, workspace_error
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

    Same steps as the Dagster asset: state is restored from the destination first, so a missing
    local pipeline directory changes nothing. `alert` tells the operator about quarantined records.
    """
    stats = SyncStats()
    dlt_source = source_builder(source)(workspace, settings=settings, stats=stats)
    pipeline = dlt_pipeline(source, workspace.id, settings)
    with settings.warehouse.write_lock():
        pipeline.sync_destination()  # a first run finds nothing and leaves the state empty
        before = dict(pipeline.state.get("sources", {}).get(source, {}))
        try:
            if pipeline.has_pending_data:  # a package an interrupted run left: finish it first, as run() does
                pipeline.normalize()
                pipeline.load()
            # pipeline.run's three steps, timed one by one for benchmarks and logs.
            started = time.perf_counter()
            pipeline.extract(dlt_source)
            stats.seconds["extract"] = time.perf_counter() - started
            started = time.perf_counter()
            normalized = pipeline.normalize()
            stats.seconds["normalize"] = time.perf_counter() - started
            started = time.perf_counter()
            load_info = pipeline.load()
            stats.seconds["load"] = time.perf_counter() - started
            stats.rows = {table: count for table, count in normalized.row_counts.items() if not table.startswith("_dlt")}
        except Exception as exc:
            cause = workspace_error(exc)
            if cause is not None:
                raise cause from None
            raise
        load_info.raise_on_failed_jobs()
        after = dict(pipeline.state.get("sources", {}).get(source, {}))
    report_quarantine(workspace.id, source, stats, alert)
    return SyncResult(load_info, stats, before, after)
