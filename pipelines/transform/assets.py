"""The dbt project as Dagster assets (dagster-dbt), plus the `reference.workspaces` table dbt reads.

One translator keys sources as `[source, table]` (the dlt assets' keys, so lineage connects with no
wiring) and models by name, and groups models by their top folder under models/ (staging,
quarantine, intermediate, marts, metrics): a model moved to a new folder joins that folder's group,
so the asset graph reads left to right by stage. dbt tests become asset checks. The manifest is built at install time (`make install` runs `dbt parse`) and
when a test session starts, never on import: a missing or stale one fails, naming `make install`.
"""

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from pipelines.settings import Settings
from pipelines.transform import (
    BUILD,
    DBT_PROJECT_DIR,
    prune_invocation_targets,
    require_manifest,
    step_dbt_env,
    unchanged_views,
)
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspaces

OWNER = "team:analytics-engineering"  # who to ask about a dbt model (a model's meta.dagster.owners wins)


def folder_group(node: Mapping[str, Any]) -> str:
    """The group of a dbt model or seed: its top folder under models/ (fqn: project, folder, ..., name)."""
    fqn = node.get("fqn", [])
    return fqn[1] if len(fqn) > 2 else "staging"  # seeds and top-level models are inputs, like staging


class AbosDbtTranslator(DagsterDbtTranslator):
    """Sources keep their `[schema, table]` keys; models are keyed by name and grouped by top folder."""

    def __init__(self, warehouse_kind: str):
        super().__init__()
        self.warehouse_kind = warehouse_kind

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["sources"].get(unique_id) or manifest["nodes"].get(unique_id, {})
        if node.get("resource_type") == "source":
            return spec
        return spec.replace_attributes(
            key=dg.AssetKey([node["name"]]),
            group_name=folder_group(node),
            kinds={"dbt", self.warehouse_kind},
            owners=spec.owners or [OWNER],
        )


def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
    project.prepare_if_dev()  # under `dagster dev` only; elsewhere `make install` built it
    require_manifest()
    return project


class AbosDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without its handle on dbt's adapter in the step's own process.

    dagster-dbt builds one before every command (importing dbt and loading the profile and project:
    about 1.3 s of CPU at each refresh) for `fetch_row_counts` and `fetch_column_metadata` alone;
    the dbt assets use neither (`row_counts` counts the rows once dbt is done)."""

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


def dbt_resource() -> DbtCliResource:
    """dbt through `abos-dbt` of this virtualenv (it may not be on PATH when Dagster runs): dbt under the
    warehouse lock, in its own process group, killed with the step (`pipelines.transform.run_dbt`)."""
    return AbosDbtCliResource(
        project_dir=os.fspath(DBT_PROJECT_DIR),
        profiles_dir=os.fspath(DBT_PROJECT_DIR),
        dbt_executable=os.fspath(Path(sys.executable).parent / "abos-dbt"),
    )


def transform_assets(workspaces: Workspaces, settings: Settings) -> list[dg.AssetsDefinition]:
    """The workspaces reference table and every dbt model, seed and test."""

    @dg.asset(
        key=["reference", "workspaces"],
        group_name="staging",
        kinds={"python", "dlt", settings.warehouse.kind},
        owners=[OWNER],
        description="One row per workspace from workspaces.yaml: timezone and reporting currency for dbt.",
    )
    def workspaces_table(context: AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        rows = [
            {"workspace_id": w.id, "name": w.name, "vertical": w.vertical, "timezone": w.timezone,
             "currency": w.currency}
            for w in workspaces
        ]
        pipeline = dlt.pipeline(
            pipeline_name="reference", pipelines_dir=str(settings.home / "dlt"),
            destination=warehouse.dlt_destination(), dataset_name="reference",
        )
        with warehouse.write_lock():
            # A package a killed run left half loaded would be completed instead of this one: its
            # inserts done again after the truncate, every workspace twice (the chaos test found it).
            # The rows are the whole table, so the old package is dropped and the table replaced anew.
            pipeline.abort_packages()
            pipeline.run(rows, table_name="workspaces", write_disposition="replace", primary_key="workspace_id")
        return dg.MaterializeResult(metadata={"workspaces": len(rows), "ids": ", ".join(w.id for w in workspaces)})

    translator = AbosDbtTranslator(settings.warehouse.kind)

    @dbt_assets(
        manifest=dbt_project().manifest_path,
        dagster_dbt_translator=translator,
        name="dbt_models",
    )
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse) -> Iterator[Any]:
        # `abos-dbt` gets the `warehouse` resource's dbt variables from this step (step_dbt_env), takes
        # its lock for dbt, and dbt dies with this step (run_dbt).
        with step_dbt_env(warehouse):
            invocation = dbt.cli(list(BUILD), context=context)
        built: list[Any] = []
        for event in invocation.stream():
            if not built:  # dbt has started: `abos-dbt` said by now whether it left the views out
                yield from views_left_out(invocation.manifest, invocation.target_path,
                                          set(context.selected_output_names), translator)
            yield event
            built.append(event)
        yield from row_counts(invocation.manifest, built, warehouse)
        prune_invocation_targets(invocation.target_path)

    return [workspaces_table, dbt_models]


def views_left_out(manifest: Mapping[str, Any], target_path: Path, selected: set[str],
                   translator: DagsterDbtTranslator) -> Iterator[dg.Output]:
    """An output for each selected staging or quarantine view when the build (target folder
    `target_path`) left them out because they are unchanged (pipelines/transform/unchanged_views.py),
    as dbt's result for a kept view gave one before: the view is the deployed one, and its asset shows
    this refresh as its latest. Yielded before dbt's first event: Dagster wants a multi-asset's outputs
    in the order of their dependencies, and the views read sources alone."""
    if not unchanged_views.left_out_by(target_path):
        return
    for unique_id, node in sorted(manifest["nodes"].items()):
        if not unchanged_views.left_out(node):
            continue
        # dagster-dbt names a model's output after its asset key (dbt_cli_event.py)
        name = translator.get_asset_spec(manifest, unique_id, None).key.to_python_identifier()
        if name in selected:
            yield dg.Output(None, output_name=name, metadata={
                "unique_id": unique_id, "status": "unchanged",
                "left_out": "its definition is the deployed one: not compiled or run by this build"})


def row_counts(manifest: Mapping[str, Any], events: Sequence[Any], warehouse: Warehouse) -> Iterator[dg.AssetObservation]:
    """The row count of every table the dbt build wrote (`dagster/row_count`, shown on the asset's
    page), counted once dbt is done: on DuckDB nothing else may open the file while dbt writes it, so
    dagster-dbt's `fetch_row_counts` cannot run alongside. Views are not counted (a count runs them).
    What was built is read from the materializations dagster-dbt made of dbt's result events (the
    build writes no run_results.json: `BUILD`'s `--no-write-json`)."""
    nodes = manifest["nodes"]
    done = {str(event.metadata["unique_id"].value) for event in events
            if isinstance(event, dg.Output | dg.AssetMaterialization) and "unique_id" in event.metadata
            and event.metadata.get("status") is not None and event.metadata["status"].value == "success"}
    built = [nodes[unique_id] for unique_id in sorted(done) if unique_id in nodes
             and nodes[unique_id]["config"].get("materialized") in ("table", "incremental")]
    if not built:
        return
    counts = warehouse.query(" union all ".join(
        f"select '{node['name']}' as model, count(*) as n from {node['schema']}.{node['alias']}" for node in built))
    for model, n in counts.itertuples(index=False):
        yield dg.AssetObservation(asset_key=dg.AssetKey([model]), metadata={"dagster/row_count": int(n)})
