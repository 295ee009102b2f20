"""Ingest assets: each connector's dlt resources as Dagster assets, partitioned by workspace.

Asset keys equal the raw tables' warehouse names (`["shopify", "orders"]`, `["stripe", "invoices"]`),
which are also the dbt sources' keys, so the dbt assets connect downstream with no wiring.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
import dlt
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource

from pipelines.ingest.pipeline import SyncStats, dlt_pipeline, warehouse_write_lock
from pipelines.settings import Settings
from pipelines.workspaces import Workspace, WorkspaceError, Workspaces

SourceBuilder = Callable[..., DltSource]  # (workspace, *, settings, stats) -> DltSource


class RawTableTranslator(DagsterDltTranslator):
    """Keys raw tables as `[source, table]` in group `ingest_<source>`, with no upstream stubs."""

    def __init__(self, warehouse_kind: str):
        self.warehouse_kind = warehouse_kind

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        source = data.resource.source_name
        return spec.replace_attributes(
            key=dg.AssetKey([source, data.resource.name]),
            deps=[],
            group_name=f"ingest_{source}",
            kinds={"dlt", source, self.warehouse_kind},
            description=data.resource.__doc__ or spec.description,
        )


def _source_state(pipeline: dlt.Pipeline, source_name: str) -> dict[str, Any]:
    """The connector's cursors as stored in the destination (restored before reading)."""
    try:
        pipeline.sync_destination()
    except Exception:  # first run: no state in the destination yet
        return {}
    return dict(pipeline.state.get("sources", {}).get(source_name, {}))


def _schema_changes(load_info: Any) -> list[str]:
    """New tables and columns in this load, e.g. 'orders.note_attributes (json)'."""
    changes = []
    for package in getattr(load_info, "load_packages", []):
        for table_name, table in (package.schema_update or {}).items():
            if table_name.startswith("_dlt"):
                continue
            for column_name, column in table.get("columns", {}).items():
                if column_name.startswith("_dlt"):
                    continue
                changes.append(f"{table_name}.{column_name} ({column.get('data_type', '?')})")
    return sorted(set(changes))


def ingest_assets(
    source_name: str, build_source: SourceBuilder, workspaces: Workspaces, settings: Settings
) -> dg.AssetsDefinition | None:
    """The assets of one connector for every workspace that uses it (None if no workspace does)."""
    users = workspaces.by_connector(source_name)
    if not users:
        return None
    partitions = dg.StaticPartitionsDefinition([w.id for w in users])
    template = build_source(users[0], settings=settings, stats=SyncStats())

    @dlt_assets(
        dlt_source=template,
        dlt_pipeline=dlt_pipeline(source_name, users[0].id, settings),
        name=f"ingest_{source_name}",
        dagster_dlt_translator=RawTableTranslator(settings.warehouse.kind),
        partitions_def=partitions,
        pool=f"{source_name}_api",
    )
    def _ingest(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        workspace: Workspace = workspaces.get(context.partition_key)
        stats = SyncStats()
        try:
            source = build_source(workspace, settings=settings, stats=stats)
            pipeline = dlt_pipeline(source_name, workspace.id, settings)
            with warehouse_write_lock(settings):
                before = _source_state(pipeline, source_name)
                results = list(dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline))
                after = dict(pipeline.state.get("sources", {}).get(source_name, {}))
        except WorkspaceError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        load_info = pipeline.last_trace.last_load_info if pipeline.last_trace else None
        changes = _schema_changes(load_info)
        if changes:
            context.log.warning(f"{workspace.id}: schema changed: {', '.join(changes)}")
        for note in stats.notes:
            context.log.warning(f"{workspace.id}: {note}")
        extra = {
            "workspace_id": workspace.id,
            "load_id": (load_info.loads_ids[-1] if load_info and load_info.loads_ids else None),
            "cursor_before": dg.MetadataValue.json(before),
            "cursor_after": dg.MetadataValue.json(after),
            "schema_changes": dg.MetadataValue.json(changes),
            **stats.as_metadata(),
        }
        for result in results:
            yield result._replace(metadata={**(result.metadata or {}), **extra})

    return _ingest
