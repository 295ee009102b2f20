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


def _stages(assets: list[dg.AssetsDefinition]) -> list[tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]]:
    """Assets grouped by partitions definition (one run can hold only one), in data-flow order:
    a group runs after every group it reads from."""
    groups: list[tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]] = []
    for assets_def in assets:
        for partitions, keys in groups:
            if partitions == assets_def.partitions_def:
                keys.extend(assets_def.keys)
                break
        else:
            groups.append((assets_def.partitions_def, list(assets_def.keys)))
    group_of = {key: index for index, (_, keys) in enumerate(groups) for key in keys}
    parents = {key: set(a.asset_deps.get(key, ())) for a in assets for key in a.keys}
    needs = {
        index: {group_of[p] for key in keys for p in parents[key] if p in group_of} - {index}
        for index, (_, keys) in enumerate(groups)
    }
    ordered: list[int] = []
    while len(ordered) < len(groups):
        ready = [i for i in range(len(groups)) if i not in ordered and needs[i] <= set(ordered)]
        if not ready:
            raise RuntimeError("asset groups depend on each other in a cycle")
        ordered.extend(ready)
    return [groups[i] for i in ordered]


def run_all(
    workspaces: Workspaces, progress: Callable[[str], None] = print, settings: Settings | None = None
) -> dict[str, object]:
    """Materialize every asset for every workspace, stage by stage; returns the runs."""
    from pipelines.definitions import defs

    settings = settings or load_settings()
    assets = [a for a in defs.resolve_asset_graph().assets_defs if a.is_materializable]
    if not assets:
        progress("no pipeline stages are defined yet; nothing to materialize")
        return {"assets": 0, "runs": [], "failed": []}
    runs: list[dict[str, object]] = []
    failed: list[str] = []
    with dagster_instance(settings) as instance:
        for partitions, keys in _stages(assets):
            partition_keys = [None] if partitions is None else [
                w.id for w in workspaces if w.id in partitions.get_partition_keys()
            ]
            for partition_key in partition_keys:
                label = f"{len(keys)} assets" + (f" for {partition_key}" if partition_key else "")
                progress(f"materializing {label}")
                # The assets come from the resolved Definitions, so their resources are already bound.
                result = dg.materialize(assets, selection=keys, partition_key=partition_key, instance=instance,
                                        raise_on_error=False)
                runs.append({"workspace": partition_key, "assets": len(keys), "success": result.success,
                             "run_id": result.run_id})
                if not result.success:
                    failed.append(label)
    if failed:
        progress(f"runs failed: {', '.join(failed)}; see their logs in the Dagster UI (make ui)")
    return {"assets": sum(len(a.keys) for a in assets), "runs": runs, "failed": failed}
