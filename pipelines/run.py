"""Headless runs: materialize every asset of the real Definitions, workspace by workspace."""

from __future__ import annotations

from typing import Callable

import dagster as dg

from pipelines.workspaces import Workspaces


def run_all(workspaces: Workspaces, progress: Callable[[str], None] = print) -> dict[str, object]:
    """Materialize all assets for every workspace; returns what ran, per workspace."""
    from pipelines.definitions import defs

    assets = list(defs.assets or [])
    if not assets:
        progress("no pipeline stages are defined yet; nothing to materialize")
        return {"assets": 0, "runs": {}}
    runs: dict[str, object] = {}
    with dg.DagsterInstance.get() as instance:
        for workspace in workspaces:
            progress(f"materializing {len(assets)} assets for {workspace.id}")
            result = dg.materialize(assets, instance=instance, partition_key=workspace.id, resources=defs.resources)
            runs[workspace.id] = {"success": result.success, "run_id": result.run_id}
    return {"assets": len(assets), "runs": runs}
