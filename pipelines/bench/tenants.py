"""The many-tenants phase of `abos bench` (issue 13, point 6): N tiny tenants refreshed through Dagster.

The sandbox serves `tiny+N` (pipelines/sandbox/simulation/tenants.py); a tenants file lists the N generated
workspaces. The Definitions are built for the tenants' own settings (`pipelines.definitions.build`:
home, warehouse, tenants file and Dagster instance passed, not written into the environment), and every asset of the
refresh (all but the weekly report and its delivery) is materialized stage by stage as `abos run`
does it: one run over every workspace for each partitioned stage (ingestion per source, then the
insights), one run of `dbt build` for all, on the persistent Dagster instance. Two refreshes are timed: the
first (every tenant's full sync) and one after the sandbox's clock moved a day (the steady state
of the six-hourly refresh).

Per workspace, the refresh's time is that of its own runs plus its share of the dbt run. The part
of it that is data is estimated from the rows it loaded at the throughput the full run of the same
benchmark measured on big data (rows/s); the rest is overhead: runs, dlt's per-load work, API round
trips. The daemon's run queue is not in these figures: it adds a process per run, which loads the
Definitions (`definitions_load`, measured in a fresh interpreter).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from pipelines.bench.measure import PeakRss, cpu_seconds
from pipelines.bench.served import served, working_copy
from pipelines.sandbox.core.connection import sandbox_env
from pipelines.sandbox.simulation.simulator import specs
from pipelines.sandbox.simulation.tenants import workspaces_file, with_tenants
from pipelines.settings import WAREHOUSE_URL_VARIABLE, Settings, load_settings
from pipelines.workspaces import load_workspaces

TENANTS = 200
BASE_SIZE = "tiny"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def tenants_phase(count: int, *, seed: int, as_of: date, cache: Path, work: Path, rss: PeakRss,
                  progress: Callable[[str], None], rows_per_s: float | None = None) -> dict[str, Any]:
    """Serve `count` generated tenants, refresh them twice through the Dagster definitions, and
    return the times: total, per run kind, per workspace, and the overhead beyond the data."""
    size = with_tenants(BASE_SIZE, count)
    store = working_copy(cache / f"{size}-seed{seed}-{as_of.isoformat()}.sqlite", work / "tenants-sandbox.sqlite",
                         size=size, seed=seed, as_of=as_of)  # the refresh after a day advances it
    result: dict[str, Any] = {"tenants": count, "size": size, "rows_per_s_for_data": rows_per_s}
    with served(store, size=size, seed=seed, as_of=as_of) as sandbox:
        rss.exclude.add(sandbox.pid)
        settings, variables = _point_at(sandbox.info, work / "tenants", count)
        result["definitions_load"] = _definitions_load(variables)
        for name in ("first", "after_a_day"):
            if name == "after_a_day":
                sandbox.advance(1.0)
            progress(f"tenants: {name} refresh of {count} workspaces through Dagster")
            with rss.phase() as phase:
                runs = refresh(settings, progress)
            result[name] = summarize(runs, count, phase, rows_per_s)
    return result


def _point_at(info: dict[str, Any], home: Path, count: int) -> tuple[Settings, dict[str, str]]:
    """The tenants' own home, DuckDB warehouse, Dagster instance and tenants file: their settings, and
    the variables that make them (for the child process that times loading the Definitions)."""
    home.mkdir(parents=True, exist_ok=True)
    tenants = workspaces_file(specs(with_tenants(BASE_SIZE, count)), home / "workspaces.yaml")
    # The tenants' credentials: connectors read secrets from the environment only (workspaces.yaml names them).
    os.environ.update(sandbox_env(info))
    variables = {"ABOS_HOME": str(home), "ABOS_WAREHOUSE_URL": f"duckdb:///{home / 'warehouse.duckdb'}",
                 "ABOS_WORKSPACES": str(tenants), "DAGSTER_HOME": str(home / "dagster")}
    return load_settings({**os.environ, **variables}), variables


def _definitions_load(variables: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds a fresh interpreter takes to load the Definitions for these tenants: what
    the run queue's launcher pays for every run it starts (a `dagster api execute_run` process)."""
    started, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run([sys.executable, "-c", "import pipelines.definitions"], check=True,
                   env={**os.environ, **variables}, capture_output=True)
    return {"seconds": round(time.perf_counter() - started, 3), "cpu_seconds": round(cpu_seconds() - cpu, 3)}


def refresh(settings: Settings, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every asset of the refresh, stage by stage, one run over every workspace for partitioned stages;
    returns each run's kind, workspaces, seconds, CPU seconds (this process and the children that ended:
    dbt), rows loaded and success."""
    from pipelines.orchestration import WEEKLY
    from pipelines.reliability import process_tags, run_checks, run_tags
    from pipelines.run import _stages, dagster_instance

    from pipelines.definitions import build

    graph = build(settings, load_workspaces(settings.workspaces_file)).resolve_asset_graph()
    assets = [a for a in graph.assets_defs if a.is_materializable]
    refreshed = (dg.AssetSelection.all() - WEEKLY).resolve(graph)
    runs: list[dict[str, Any]] = []
    with dagster_instance(settings) as instance, _dbt_warehouse(settings):
        for partitions, keys in _stages(assets):
            keys = [key for key in keys if key in refreshed]
            if not keys:
                continue
            kind = _kind(graph, keys)
            # As `abos run` (`execute_stage_job`): the assets and their checks, but the freshness checks.
            selection = dg.AssetSelection.assets(*keys).without_checks() | dg.AssetSelection.checks(
                *run_checks(graph.asset_check_keys, keys))
            # As `abos run`: one run over every workspace for the partitioned stages (their single-run
            # backfill policy; pipelines/partitions.py), one run of `dbt build` for all.
            chunk = None if partitions is None else partitions.get_partition_keys(dynamic_partitions_store=instance)
            progress(f"tenants: {kind}, one run" + (f" over {len(chunk)} workspaces" if chunk else ""))
            started, cpu = time.perf_counter(), cpu_seconds()
            done = dg.materialize(assets, selection=selection, instance=instance, raise_on_error=False,
                                  tags={**process_tags(), **(run_tags(chunk) if chunk else {})}, run_config=QUIET)
            runs.append({"kind": kind, "workspaces": chunk, "success": done.success,
                         "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu,
                         **_from_event_log(instance, done.run_id)})
    failed = [run["kind"] for run in runs if not run["success"]]
    if failed:
        raise RuntimeError(f"tenants refresh: {len(failed)} runs failed, e.g. {', '.join(failed[:5])}")
    return runs


@contextmanager
def _dbt_warehouse(settings: Settings) -> Iterator[None]:
    """ABOS_WAREHOUSE_URL set to the tenants' warehouse while the refresh runs: `abos-dbt`, the dbt
    executable Dagster runs, reads it from the environment dagster-dbt hands on (this process's)."""
    before = os.environ.get(WAREHOUSE_URL_VARIABLE)
    os.environ[WAREHOUSE_URL_VARIABLE] = settings.warehouse.url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WAREHOUSE_URL_VARIABLE, None)
        else:
            os.environ[WAREHOUSE_URL_VARIABLE] = before


def _kind(graph, keys: list[dg.AssetKey]) -> str:
    groups = {graph.get(key).group_name or "" for key in keys}
    if all(group.startswith("ingest_") for group in groups):
        return "ingest_" + "_".join(sorted(group.removeprefix("ingest_") for group in groups))
    if any("dbt" in graph.get(key).kinds for key in keys):
        return "dbt"
    return "insights" if groups <= {"insights"} else "+".join(sorted(groups))


def _from_event_log(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """From one read of the run's events: the rows its materializations say they loaded (`rows`), and
    the seconds inside its steps, from STEP_START to their end (`steps_seconds`). One read, as the
    benchmark's own CPU is counted in the phase's: each read deserializes every event of the run."""
    rows = 0
    starts: dict[str, float] = {}
    inside = 0.0
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            loaded = entry.asset_materialization.metadata.get("rows_loaded")
            rows += int(loaded.value or 0) if loaded is not None else 0
        elif not event.step_key:
            continue
        elif event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            inside += entry.timestamp - starts.pop(event.step_key, entry.timestamp)
    return {"rows": rows, "steps_seconds": inside}


def summarize(runs: list[dict[str, Any]], count: int, phase: dict[str, float],
              rows_per_s: float | None) -> dict[str, Any]:
    """Total time, per run kind, per workspace, and the overhead beyond the data."""
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: {"runs": 0, "seconds": 0.0, "cpu_seconds": 0.0,
                                                               "steps_seconds": 0.0, "rows": 0})
    for run in runs:
        found = kinds[run["kind"]]
        found["runs"] += 1
        found["seconds"] += run["seconds"]
        found["cpu_seconds"] += run["cpu_seconds"]
        found["steps_seconds"] += run["steps_seconds"]
        found["rows"] += run["rows"]
    for found in kinds.values():
        found["mean_run_seconds"] = found["seconds"] / max(found["runs"], 1)
        found["mean_outside_steps_seconds"] = (found["seconds"] - found["steps_seconds"]) / max(found["runs"], 1)
    total = phase["seconds"]
    rows = sum(run["rows"] for run in runs)
    data_seconds = (rows / rows_per_s if rows_per_s else 0.0)
    shared = sum(run["seconds"] for run in runs if run["workspaces"] is None)  # dbt, exchange rates
    return {
        "seconds": total,
        "cpu_seconds": phase["cpu_seconds"],
        "per_workspace_cpu_seconds": round(phase["cpu_seconds"] / count, 3),
        "peak_rss_mib": phase["peak_rss_mib"],
        "runs": len(runs),
        "rows_loaded": rows,
        "by_kind": {kind: {k: round(v, 3) for k, v in found.items()} for kind, found in kinds.items()},
        "per_workspace_seconds": round(total / count, 3),
        "data_seconds": round(data_seconds, 3),
        # Beyond the data: the workspace's own runs, and its share of the runs for all (dbt build).
        "per_workspace_overhead_seconds": round((total - data_seconds) / count, 3),
        "per_workspace_own_runs_seconds": round((total - shared - data_seconds) / count, 3),
        "per_workspace_shared_runs_seconds": round(shared / count, 3),
    }
