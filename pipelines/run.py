"""Headless runs of the real Definitions: `abos run` and `abos demo` materialize everything.

Stages run in data-flow order. Workspace-partitioned assets (ingestion, insights) run once per
workspace that has them; unpartitioned assets (the dbt models) run once, after ingestion.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import dagster as dg

from pipelines.settings import PROJECT_ROOT, Settings, load_settings
from pipelines.workspaces import Workspaces


DEFAULT_INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME with the project's default dagster.yaml unless one is there already."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        shutil.copyfile(DEFAULT_INSTANCE_CONFIG, config)
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings.dagster_home


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance in DAGSTER_HOME, so headless runs show in the UI."""
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


def _partitioned_for(assets_def: dg.AssetsDefinition, workspace_id: str) -> bool:
    partitions = assets_def.partitions_def
    return partitions is not None and workspace_id in partitions.get_partition_keys()


def run_all(
    workspaces: Workspaces, progress: Callable[[str], None] = print, settings: Settings | None = None
) -> dict[str, object]:
    """Materialize every asset for every workspace; returns the runs, by stage and workspace."""
    from pipelines.definitions import defs

    settings = settings or load_settings()
    assets = [a for a in defs.resolve_asset_graph().assets_defs if a.is_materializable]
    if not assets:
        progress("no pipeline stages are defined yet; nothing to materialize")
        return {"assets": 0, "runs": {}}
    runs: dict[str, object] = {}
    failed: list[str] = []
    with dagster_instance(settings) as instance:
        for workspace in workspaces:
            keys = [key for a in assets if _partitioned_for(a, workspace.id) for key in a.keys]
            if not keys:
                continue
            progress(f"{workspace.id}: materializing {len(keys)} assets")
            # The assets come from the resolved Definitions, so their resources are already bound.
            result = dg.materialize(
                assets, selection=keys, partition_key=workspace.id, instance=instance, raise_on_error=False
            )
            runs[workspace.id] = {"success": result.success, "run_id": result.run_id, "assets": len(keys)}
            if not result.success:
                failed.append(workspace.id)
        shared = [key for a in assets if a.partitions_def is None for key in a.keys]
        if shared:
            progress(f"materializing {len(shared)} shared assets")
            result = dg.materialize(assets, selection=shared, instance=instance, raise_on_error=False)
            runs["shared"] = {"success": result.success, "run_id": result.run_id, "assets": len(shared)}
            if not result.success:
                failed.append("shared")
    if failed:
        progress(f"runs failed for: {', '.join(failed)}; see the Dagster UI (make ui) for their logs")
    return {"assets": sum(len(a.keys) for a in assets), "runs": runs, "failed": failed}
