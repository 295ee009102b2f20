"""One timed pass of the whole pipeline over one warehouse: ingest, dbt, insights.

It runs the product's own pieces in the order a headless run does (`abos run`): every connector of
every workspace at once (`ingest.sync.sync`, which times dlt's extract, normalize and load steps), the
workspaces reference table and `dbt build`, then the three insights assets of every workspace.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from pipelines.bench.measure import PeakRss, stage
from pipelines.ingest.fx import sync_fx
from pipelines.deliver.alerts import alert_operator
from pipelines.ingest.sync import sync
from pipelines.settings import Settings
from pipelines.transform import BUILD, DBT_PROJECT_DIR, dbt_env
from pipelines.transform import unchanged_views
from pipelines.workspaces import Workspaces

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # Dagster's step logs, off the console
# The object each source's throughput is counted in, besides rows of all its tables.
MAIN_TABLE = {"shopify": "orders", "stripe": "invoices"}
DBT_SLOWEST = 8  # dbt nodes a run reports with their seconds


def run_pipeline(settings: Settings, workspaces: Workspaces, rss: PeakRss,
                 progress: Callable[[str], None], name: str) -> dict[str, Any]:
    """Sync, build and scan everything once; returns stage times, per-source throughput and peak RSS.
    `progress` hears the run's `name` and each stage's, at its start and with its seconds at its end."""
    result: dict[str, Any] = {"stages": {"extract": 0.0, "normalize": 0.0, "load": 0.0}, "sources": {}}
    kind = settings.warehouse.kind
    with stage(rss, progress, name) as whole:
        with stage(rss, progress, f"{kind}: ingest") as ingest:
            synced = _sync_all(settings, workspaces, progress)
        for source in ("shopify", "stripe"):
            mine = [(workspace, found, started, ended) for name, workspace, found, started, ended in synced
                    if name == source]
            if not mine:
                continue
            totals = {"seconds": round(max(e for *_, e in mine) - min(s for *_, s, _ in mine), 3), "rows": 0,
                      "objects": 0, "requests": 0, "throttle_wait_seconds": 0.0, "bulk_wait_seconds": 0.0,
                      "modes": set(), "workspaces": {}}
            for workspace, found, started, ended in mine:
                # Each workspace's sync: the totals above hide a shop's pacing behind the others' figures.
                totals["workspaces"][workspace] = {
                    "seconds": round(ended - started, 3), "rows": sum(found.stats.rows.values()),
                    "requests": found.stats.requests,
                    "throttle_wait_seconds": round(found.stats.throttle_wait_seconds, 2),
                    "bulk_wait_seconds": round(found.stats.bulk_wait_seconds, 2), "mode": found.stats.mode}
                for step, seconds in found.stats.seconds.items():
                    result["stages"][step] += seconds
                totals["rows"] += sum(found.stats.rows.values())
                totals["objects"] += found.stats.rows.get(MAIN_TABLE[source], 0)
                totals["requests"] += found.stats.requests
                totals["throttle_wait_seconds"] += found.stats.throttle_wait_seconds
                totals["bulk_wait_seconds"] += found.stats.bulk_wait_seconds
                totals["modes"].add(found.stats.mode)
            totals["modes"] = sorted(totals["modes"])
            totals["rows_per_s"] = round(totals["rows"] / max(totals["seconds"], 1e-9), 1)
            totals[f"{MAIN_TABLE[source]}_per_s"] = round(totals["objects"] / max(totals["seconds"], 1e-9), 1)
            totals["throttle_wait_seconds"] = round(totals["throttle_wait_seconds"], 2)
            totals["bulk_wait_seconds"] = round(totals["bulk_wait_seconds"], 2)
            result["sources"][source] = totals
        with stage(rss, progress, f"{kind}: dbt build") as dbt:
            sync_fx(settings)  # the sandbox's ECB rates: a few thousand rows, counted with dbt
            _workspaces_table(workspaces, settings)
            result["dbt_slowest"] = _dbt_build(settings)
        result["stages"]["dbt"] = dbt["seconds"]
        result["dbt_peak_rss_mib"] = dbt["peak_rss_mib"]
        with stage(rss, progress, f"{kind}: insights") as insights:
            _insights(workspaces, settings)
        result["stages"]["insights"] = insights["seconds"]
    result["stages"] = {step: round(seconds, 3) for step, seconds in result["stages"].items()}
    result["ingest_seconds"] = ingest["seconds"]  # wall time: the syncs run at once
    result["ingest_cpu_seconds"] = ingest["cpu_seconds"]
    result["total_seconds"] = whole["seconds"]
    # Our own time: the wall time less the API's. The syncs overlap, so ingestion's own part is the
    # longest sync's wall time less what it waited for the API (pacing, retries' back-off, bulk exports),
    # each wait counted as wall time (readers pacing at once count once). It does not take out the time
    # the sandbox's pages took to render on the same cores: `stage_cpu_seconds` shows that share.
    own_ingest = max((ended - started - found.stats.throttle_wait_seconds - found.stats.bulk_wait_seconds
                      for _, _, found, started, ended in synced), default=0.0)
    result["own_seconds"] = round(whole["seconds"] - ingest["seconds"] + own_ingest, 3)
    result["cpu_seconds"] = whole["cpu_seconds"]
    # CPU seconds per stage: ours (the benchmark's process tree) and the sandbox's, which serves the
    # API pages on the same cores: of the ingestion's wall time, this much went to the stand-in.
    result["stage_cpu_seconds"] = {name: {"ours": phase["cpu_seconds"], "sandbox": phase["api_cpu_seconds"]}
                                   for name, phase in (("ingest", ingest), ("dbt", dbt), ("insights", insights))}
    result["sandbox_cpu_seconds"] = whole["api_cpu_seconds"]
    result["api_requests"] = sum(source["requests"] for source in result["sources"].values())
    result["peak_rss_mib"] = whole["peak_rss_mib"]
    return result


def _sync_all(settings: Settings, workspaces: Workspaces,
              progress: Callable[[str], None]) -> list[tuple[str, str, Any, float, float]]:
    """Every connector of every workspace, all at once as `abos run` runs them (pipelines/run.py):
    (source, workspace id, sync result, start, end) of each."""
    def timed(source: str, workspace: Any) -> tuple[str, str, Any, float, float]:
        progress(f"{settings.warehouse.kind}: syncing {source} for {workspace.id}")
        started = time.perf_counter()
        found = sync(source, workspace, settings, alert=functools.partial(alert_operator, settings))
        ended = time.perf_counter()
        # wall seconds only: the syncs share this process, so one sync's CPU is not to be had cheaply
        progress(f"{settings.warehouse.kind}: synced {source} for {workspace.id}: "
                 f"{sum(found.stats.rows.values())} rows in {ended - started:.1f} s")
        return source, workspace.id, found, started, ended

    pairs = [(source, workspace) for source in ("shopify", "stripe") for workspace in workspaces
             if source in workspace.connectors]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(pairs), 1)) as pool:
        return list(pool.map(lambda pair: timed(*pair), pairs))


def _workspaces_table(workspaces: Workspaces, settings: Settings) -> None:
    """The `reference/workspaces` asset, which dbt reads for timezones and currencies."""
    from pipelines.transform.assets import transform_assets

    table = transform_assets(workspaces, settings)[0]
    dg.materialize([table], instance=dg.DagsterInstance.ephemeral(), run_config=QUIET,
                   resources={"warehouse": settings.warehouse})


def _dbt_build(settings: Settings, slowest: int = DBT_SLOWEST) -> dict[str, dict[str, float]]:
    """`dbt build` (models and their tests), as the dbt assets run it; raises with dbt's output on failure.
    Returns the `slowest` nodes' seconds and their compile phase's, from dbt's log (`node_seconds`: the
    build writes no run_results.json, `BUILD`'s `--no-write-json`)."""
    home = settings.home
    profile_env = dbt_env(settings.warehouse)
    env = {**os.environ, **profile_env, "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           "DBT_TARGET_PATH": str(home / "dbt-target"), "DBT_LOG_PATH": str(home / "dbt-logs")}
    log = home / "dbt-logs" / "dbt.log"
    before = log.stat().st_size if log.exists() else 0  # dbt appends each run's lines to its log
    dbt = Path(sys.executable).parent / "dbt"
    finished = []

    def build(command: list[str], command_env: dict[str, str]) -> int:
        finished.append(subprocess.run([str(dbt), *command], check=False, cwd=DBT_PROJECT_DIR, env=command_env,
                                       capture_output=True, text=True))
        return finished[-1].returncode

    # as `run_dbt` runs it: the unchanged views left out (pipelines/transform/unchanged_views.py)
    unchanged_views.run_build(build, list(BUILD), env, profile_env, DBT_PROJECT_DIR)
    done = finished[0]
    if done.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    with log.open(encoding="utf-8", errors="replace") as text:
        text.seek(before if log.stat().st_size >= before else 0)  # rotated: the new file is this run's
        return slowest_nodes(node_seconds(text.read()), slowest)


# dbt's debug log line for a node's phase: `<hh:mm:ss.ffffff> [debug] [<thread>]: Began compiling node <id>`
_NODE_PHASE = re.compile(r"(\d\d):(\d\d):(\d\d\.\d+) \[debug ?\] \[[^\]]*\]: "
                         r"(Began running|Began compiling|Began executing|Finished running) node (\S+)")


def node_seconds(log: str) -> list[dict[str, Any]]:
    """Each node of a dbt run's debug log (text format) with its wall seconds (`execution_time`: from
    "Began running node" to "Finished running node") and its compile phase's (`compiling`: from "Began
    compiling" to "Began executing"; 0 for a node that did not get to compile). The log's clock is
    the time of day: a phase across midnight is counted modulo a day."""
    seen: dict[str, dict[str, float]] = {}
    for hours, minutes, seconds, phase, unique_id in _NODE_PHASE.findall(log):
        seen.setdefault(unique_id, {})[phase] = int(hours) * 3600 + int(minutes) * 60 + float(seconds)

    def between(node: dict[str, float], first: str, then: str) -> float:
        return (node[then] - node[first]) % 86400 if first in node and then in node else 0.0

    return [{"unique_id": unique_id, "execution_time": between(node, "Began running", "Finished running"),
             "compiling": between(node, "Began compiling", "Began executing")} for unique_id, node in seen.items()]


def slowest_nodes(results: list[dict[str, Any]], slowest: int = DBT_SLOWEST) -> dict[str, dict[str, float]]:
    """The `slowest` nodes of `node_seconds`' `results` by `execution_time` (wall seconds), each with
    the part of it spent in the node's compile phase. A model's compile can take seconds that are
    not its work (at `large@0.01` `subscriptions` took 2.61 s, 2.34 of them compiling, and its statements
    0.12 s: docs/performance.md, "what the SaaS nodes read, by statement"); a hook's and the segment
    tables' statements run there too (run_query), so it is shown, not left out."""
    ranked = sorted(results, key=lambda node: -node["execution_time"])[:slowest]
    return {node["unique_id"].split(".", 2)[-1]: {"seconds": round(node["execution_time"], 2),
                                                  "compiling": round(node["compiling"], 2)} for node in ranked}


def _insights(workspaces: Workspaces, settings: Settings) -> None:
    """The insights assets (anomalies, drivers, weekly report) of every workspace."""
    from pipelines.insights.assets import insights_assets

    assets = insights_assets(workspaces, settings)
    instance = dg.DagsterInstance.ephemeral()
    for workspace in workspaces:
        started = time.perf_counter()
        done = dg.materialize(assets, partition_key=workspace.id, instance=instance, raise_on_error=False,
                              run_config=QUIET, resources={"warehouse": settings.warehouse})
        if not done.success:
            raise RuntimeError(f"insights failed for {workspace.id} after {time.perf_counter() - started:.0f}s")
