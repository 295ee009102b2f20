"""Ingest assets: each connector's dlt resources as Dagster assets, partitioned by workspace.

Asset keys equal the raw tables' warehouse names (`["shopify", "orders"]`, `["stripe", "invoices"]`),
which are also the dbt sources' keys, so the dbt assets connect downstream with no wiring.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import dlt
from dagster import AssetExecutionContext
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, build_dlt_asset_specs
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource

from pipelines.ingest.fx import fx_pipeline, fx_source
from pipelines.ingest.pipeline import (
    Alert,
    SyncStats,
    deterministic_error,
    dlt_pipeline,
    report_quarantine,
    run_steps,
)
from pipelines.ingest.shopify import forget
from pipelines.partitions import WorkspaceFailure, connector_partitions, materialize_each
from pipelines.reliability import API_RETRY_POLICY
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace, Workspaces

SourceBuilder = Callable[..., DltSource]  # (workspace, *, settings, stats) -> DltSource


class SyncTargets(dg.Config):
    """A targeted sync: the objects webhooks named (Shopify global ids, Stripe event ids), read by id,
    cursors untouched. Empty: the scheduled sync (changes since the cursor)."""

    objects: list[str] = []


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


def _schema_tables(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The tables of the pipeline's schema (none before its first sync). Read once per use: each
    `pipeline.default_schema` loads the stored schema file again once it is committed (~40 ms)."""
    return dict(pipeline.default_schema.tables) if pipeline.default_schema_name else {}


def _loaded_columns(tables: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per table that holds data, its columns and their types, from the pipeline's schema's `tables`."""
    return {
        name: {column: spec.get("data_type", "?") for column, spec in table.get("columns", {}).items()
               if not column.startswith("_dlt")}
        for name, table in tables.items()
        if not name.startswith("_dlt") and table.get("x-normalizer", {}).get("seen-data")
    }


def _table_metadata(tables: dict[str, Any], dataset: str, table: str) -> dict[str, Any]:
    """The loaded table's name and columns, as Dagster shows them on the asset's page."""
    columns = tables.get(table, {}).get("columns", {})
    schema = dg.TableSchema(columns=[dg.TableColumn(name, spec.get("data_type") or "unknown")
                                     for name, spec in columns.items()])
    return {"dagster/column_schema": schema, "dagster/table_name": f"{dataset}.{table}"}


def _schema_changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Per table, what a load changed: its first load for this pipeline, new columns, or a column whose type changed
    (dlt keeps the old column and adds a `<name>__v_<type>` variant column beside it)."""
    changes: dict[str, list[str]] = {}
    for table, columns in after.items():
        if table not in before:
            changes[table] = ["first load"]
            continue
        notes = []
        for name in sorted(set(columns) - set(before[table])):
            if "__v_" in name:
                notes.append(f"type changed: {name.split('__v_')[0]} also arrives as {columns[name]}, kept in {name}")
            else:
                notes.append(f"new column: {name} ({columns[name]})")
        if notes:
            changes[table] = notes
    return changes


def ingest_assets(
    source_name: str, build_source: SourceBuilder, workspaces: Workspaces, settings: Settings, alert: Alert
) -> dg.AssetsDefinition | None:
    """The assets of one connector for every workspace that uses it (None if no workspace does);
    `alert` tells the operator about quarantined records."""
    users = workspaces.by_connector(source_name)
    if not users:
        return None
    partitions = connector_partitions(workspaces, source_name)
    template = build_source(users[0], settings=settings, stats=SyncStats())

    # `@dlt_assets` with a retry policy, over many workspaces in one run: the same specs, as a
    # multi-asset that records each workspace's materializations itself (pipelines/partitions.py).
    specs = build_dlt_asset_specs(template, dlt_pipeline(source_name, users[0].id, settings),
                                  RawTableTranslator(settings.warehouse.kind))

    @dg.multi_asset(
        specs=[spec.replace_attributes(skippable=True) for spec in specs],
        name=f"load_{source_name}",  # the op; the job `ingest_<source>` runs it
        can_subset=True,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=f"{source_name}_api",
        retry_policy=API_RETRY_POLICY,
    )
    def _ingest(context: AssetExecutionContext, config: SyncTargets, warehouse: Warehouse) -> Iterator[Any]:
        """Sync the run's workspaces, `ABOS_SYNC_WORKERS` at once (each client paces itself to its own
        account's limit, so their waits overlap); a workspace's failure is its own."""
        selected = [key.path[-1] for key in context.selected_asset_keys] if context.is_subset else None

        def sync(workspace_id: str) -> Iterator[tuple[dg.AssetKey, dict[str, Any]]]:
            yield from _sync_workspace(context, warehouse, workspaces.get(workspace_id), config.objects or None, selected)

        yield from materialize_each(context, sync, _ingest_failure, workers=settings.sync_workers)

    def _sync_workspace(context: AssetExecutionContext, warehouse: Warehouse, workspace: Workspace,
                        targets: list[str] | None, selected: list[str] | None) -> list[tuple[dg.AssetKey, dict[str, Any]]]:
        """One workspace's sync: each raw table's metadata."""
        stats = SyncStats()
        source = build_source(workspace, settings=settings, stats=stats, targets=targets)
        if selected is not None:
            source = source.with_resources(*selected)
        pipeline = dlt_pipeline(source_name, workspace.id, settings, warehouse,
                                targeted=targets is not None)
        columns_before = _loaded_columns(_schema_tables(pipeline))
        steps = run_steps(pipeline, source, warehouse, stats)
        after = dict(pipeline.state.get("sources", {}).get(source_name, {}))
        tables = _schema_tables(pipeline)
        changes = _schema_changes(columns_before, _loaded_columns(tables))
        # Objects a targeted read found deleted in the shop leave the raw tables (webhooks.md, "Deletions").
        deleted = forget(warehouse, workspace.id, stats.gone) if stats.gone else {}
        report_quarantine(workspace.id, source_name, stats, alert, log=context.log)
        for table, notes in changes.items():
            log = context.log.info if notes == ["first load"] else context.log.warning
            log(f"{workspace.id}: {source_name}.{table}: {'; '.join(notes)}")
        for note in stats.notes:
            context.log.warning(f"{workspace.id}: {note}")
        load_ids = steps.load_info.loads_ids
        extra = {
            "workspace_id": workspace.id,
            "targets": len(targets or ()),
            **{f"{root}_deleted": n for root, n in deleted.items()},
            "load_id": load_ids[-1] if load_ids else None,
            "cursor_before": dg.MetadataValue.json(steps.before),
            "cursor_after": dg.MetadataValue.json(after),
            "quarantined": dg.MetadataValue.json(stats.quarantined),
            "seconds": dg.MetadataValue.json({step: round(s, 3) for step, s in stats.seconds.items()}),
            **stats.as_metadata(),
        }
        return [(dg.AssetKey([source_name, name]), {
            **_table_metadata(tables, pipeline.dataset_name, name), "rows_loaded": steps.normalized.row_counts.get(name, 0),
            **extra, "schema_changes": dg.MetadataValue.json(changes.get(name, [])),
        }) for name in source.selected_resources]

    return _ingest


def _ingest_failure(workspace_id: str, exc: Exception) -> WorkspaceFailure:
    """A workspace's failed sync: a configuration problem or a load the warehouse refused is not
    retried (a retry cannot help, and the message names the setting or the table to look at)."""
    reason = deterministic_error(exc, workspace_id)
    if reason is not None:
        return WorkspaceFailure(workspace_id, reason, retryable=False)
    return WorkspaceFailure(workspace_id, f"workspace {workspace_id!r}: {type(exc).__name__}: {exc}", retryable=True)


def fx_assets(settings: Settings) -> dg.AssetsDefinition:
    """The exchange-rate tables (`fx.ecb_rates`, `fx.operator_rates`): one load for every workspace."""
    @dg.multi_asset(
        specs=build_dlt_asset_specs(fx_source(settings.fx), fx_pipeline(settings),
                                    RawTableTranslator(settings.warehouse.kind)),
        name="load_fx",  # the op; the job `ingest_fx` runs it
        retry_policy=API_RETRY_POLICY,
    )
    def _fx(context: AssetExecutionContext, dlt: DagsterDltResource, warehouse: Warehouse) -> Iterator[Any]:
        pipeline = fx_pipeline(settings, warehouse)
        # one load of the dataset at a time: on Postgres too, two loads at once share its staging tables
        with warehouse.load_lock(pipeline.dataset_name):
            yield from dlt.run(context=context, dlt_source=fx_source(settings.fx), dlt_pipeline=pipeline)

    return _fx
