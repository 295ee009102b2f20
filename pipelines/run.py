"""Headless runs of the real Definitions: `abos run` and `abos demo` materialize everything.

Stages run in data-flow order. Workspace-partitioned assets run in one run over every workspace that
has them (ingestion, insights: their single-run backfill policy) or once per workspace (the weekly
report); unpartitioned assets (the dbt models) run once, after ingestion.
"""

from __future__ import annotations

import contextlib
import functools
import graphlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, TypeVar

import dagster as dg
import yaml
from dagster._core.definitions.backfill_policy import BackfillPolicyType
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_origin import RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origins_from_yaml_paths

from pipelines.deliver.assets import undelivered
from pipelines.insights.assets import ANOMALIES, REPORTS
from pipelines.partitions import contiguous_ranges, fully_materialized
from pipelines.processes import STOP_SIGNALS, Stopped, stop_children
from pipelines.refresh import STAGE_TAG
from pipelines.reliability import (
    execute_here,
    free_finished_runs_slots,
    overdue_steps,
    recover_dead_runs,
    runs_of_this_process,
)
from pipelines.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from pipelines.workspaces import Workspaces

T = TypeVar("T")
RECOVERY_INTERVAL_SECONDS = 30.0  # how often a waiting `abos run` looks for dead runs holding its pools


LAUNCHED_BY_TAG = "user"  # what the Runs page shows as "Launched by" (else "Manually launched")
WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
DEFAULT_INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster.yaml"
POSTGRES_INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "dagster-postgres.yaml"


def ensure_dagster_home(settings: Settings) -> Path:
    """DAGSTER_HOME with the project's dagster.yaml unless one is there already: the Postgres one
    (deploy/dagster-postgres.yaml) when ABOS_DAGSTER_PG_URL is set, else SQLite (deploy/dagster.yaml)."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists() or not config.read_text().strip():
        shutil.copyfile(POSTGRES_INSTANCE_CONFIG if settings.dagster_pg_url else DEFAULT_INSTANCE_CONFIG, config)
    elif settings.dagster_pg_url and "postgres" not in ((yaml.safe_load(config.read_text()) or {}).get("storage") or {}):
        raise SettingsError(
            f"ABOS_DAGSTER_PG_URL is set, but {config} keeps Dagster's storage in SQLite: replace it with "
            f"{POSTGRES_INSTANCE_CONFIG} (or unset ABOS_DAGSTER_PG_URL)"
        )
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings.dagster_home


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance in DAGSTER_HOME, so headless runs show in the UI."""
    ensure_dagster_home(settings)
    return dg.DagsterInstance.get()


def _stages(assets: list[dg.AssetsDefinition]) -> list[tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]]:
    """Assets in runs that Dagster can execute, in data-flow order.

    One run holds assets of one partitions definition. An asset's stage is its parents' stage,
    plus one where a parent has another partitions definition; each (stage, definition) is one
    group, and groups run stage by stage, so every group runs after everything it reads.
    """
    partitions_of = {key: a.partitions_def for a in assets for key in a.keys}
    parents = {key: [p for p in a.asset_deps.get(key, ()) if p in partitions_of] for a in assets for key in a.keys}
    stage: dict[dg.AssetKey, int] = {}

    def stage_of(key: dg.AssetKey, seen: frozenset = frozenset()) -> int:
        if key not in stage:
            if key in seen:
                raise RuntimeError(f"assets depend on each other in a cycle through {key.to_user_string()}")
            stage[key] = max(
                (stage_of(p, seen | {key}) + (partitions_of[p] != partitions_of[key]) for p in parents[key]),
                default=0,
            )
        return stage[key]

    # One multi-asset runs in one stage (the dbt models as one `dbt build`, so a singular test never
    # runs before a model it reads): its assets take the latest of their stages, and their children follow.
    changed = True
    while changed:
        changed = False
        for a in assets:
            latest = max((stage_of(key) for key in a.keys), default=0)
            for key in a.keys:
                if stage[key] < latest:
                    stage[key], changed = latest, True
        for key in partitions_of:
            moved = max((stage[p] + (partitions_of[p] != partitions_of[key]) for p in parents[key]), default=0)
            if moved > stage[key]:
                stage[key], changed = moved, True

    groups: list[tuple[int, dg.PartitionsDefinition | None, list[dg.AssetKey]]] = []
    for key in partitions_of:
        for group_stage, partitions, keys in groups:
            if group_stage == stage_of(key) and partitions == partitions_of[key]:
                keys.append(key)
                break
        else:
            groups.append((stage_of(key), partitions_of[key], [key]))
    return [(partitions, keys) for _, partitions, keys in sorted(groups, key=lambda group: group[0])]


def stage_runs(defs: dg.Definitions) -> list[tuple[str, dg.PartitionsDefinition | None, list[dg.AssetKey]]]:
    """The runs `abos run` launches, in data-flow order: (job, partitions definition, asset keys).

    Every materializable asset belongs to exactly one stage job of the Definitions (`ingest_<source>`,
    `transform`, `insights`, `weekly_report`: the jobs `stage_job` made, tagged `abos/stage`), so a
    run carries its stage's name in the Dagster UI.
    Jobs run after the jobs they read from; within a job, `_stages` orders the runs.
    """
    graph = defs.resolve_asset_graph()
    assets = [a for a in graph.assets_defs if a.is_materializable]
    job_of: dict[dg.AssetKey, str] = {}
    for job in defs.jobs or []:
        if STAGE_TAG not in (getattr(job, "tags", None) or {}):
            continue  # not a stage (privacy_requests, the webhook jobs)
        for key in job.selection.resolve(graph):
            if key in job_of:
                raise RuntimeError(f"{key.to_user_string()} is in two stage jobs: {job_of[key]} and {job.name}")
            job_of[key] = job.name
    missing = [key.to_user_string() for a in assets for key in a.keys if key not in job_of]
    if missing:
        raise RuntimeError(f"assets in no stage job: {', '.join(sorted(missing))}")
    # A job runs after the jobs its assets read from (ingest before transform, insights before the report).
    after: dict[str, set[str]] = {name: set() for name in job_of.values()}
    for key, name in job_of.items():
        after[name] |= {job_of[p] for p in graph.get(key).parent_keys if p in job_of and job_of[p] != name}
    sorter = graphlib.TopologicalSorter(after)
    sorter.prepare()
    runs = []
    while sorter.is_active():
        for name in sorted(sorter.get_ready()):
            mine = [a for a in assets if any(job_of[key] == name for key in a.keys)]
            runs.extend((name, partitions, keys) for partitions, keys in _stages(mine))
            sorter.done(name)
    return runs


def run_all(
    workspaces: Workspaces, progress: Callable[[str], None] = print, settings: Settings | None = None,
    log_level: str = "WARNING", launched_by: str = "abos run",
) -> dict[str, object]:
    """Materialize every asset for every workspace, stage by stage; returns the runs.

    When a workspace's run fails, its later stages are skipped (listed under "skipped", naming the
    failed run), so one cause fails one run and makes one operator alert. A failed unpartitioned run
    (the dbt build of every workspace) skips nothing: the workspaces' runs go on with what it built.

    Each run is one of the stage jobs (`stage_runs`), tagged `user: <launched_by>` (the UI's "Launched
    by"). Dagster's console shows events of `log_level` and above (warnings and errors by default;
    `abos run -v` shows every event); every event is kept in the run's log in the Dagster UI either way.
    """
    from pipelines.definitions import defs

    settings = settings or load_settings()
    runs_to_do = stage_runs(defs)
    if not runs_to_do:
        progress("no pipeline stages are defined yet; nothing to materialize")
        return {"assets": 0, "runs": [], "failed": [], "skipped": []}
    runs: list[dict[str, object]] = []
    failed: list[str] = []
    skipped: list[str] = []
    failed_stage: dict[str, str] = {}  # workspace → its first failed run: its later stages are skipped
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with _stop_signals_raise(), dagster_instance(settings) as instance:
        _recover(instance, progress)
        for job_name, partition_keys, keys in _each_run(runs_to_do, workspaces, defs.resolve_asset_graph()):
            if partition_keys is not None:
                for key in [k for k in partition_keys if k in failed_stage]:  # one cause, one failed run, one alert
                    progress(f"{job_name} for {key} skipped: {failed_stage[key]} failed")
                    skipped.append(f"{job_name} for {key} (after {failed_stage[key]} failed)")
                partition_keys = [k for k in partition_keys if k not in failed_stage]
                if not partition_keys:
                    continue
            # A run holds a range of neighbouring partitions: workspaces skipped above split it.
            partitions = defs.resolve_job_def(job_name).partitions_def
            for chunk in contiguous_ranges(partitions, partition_keys) if partition_keys else [None]:
                label = job_name + (f" for {', '.join(chunk)}" if chunk else "")
                progress(f"running {label} ({len(keys)} assets)")
                result = _supervised(instance, settings, progress, functools.partial(
                    execute_stage_job, defs, job_name, keys, chunk, instance, run_config,
                    tags={LAUNCHED_BY_TAG: launched_by}))
                runs.append({"job": job_name, "workspaces": chunk, "assets": len(keys),
                             "success": result.success, "run_id": result.run_id})
                if not result.success:
                    progress(f"{label} FAILED (run {result.run_id})")
                    if not chunk:
                        failed.append(label)
                    # A run over many workspaces fails those it did not materialize; the others are
                    # done (pipelines/partitions.py), and only the failed ones skip their later stages.
                    done = fully_materialized(instance, result.run_id, keys) if chunk else set()
                    for key in [k for k in chunk or [] if k not in done]:
                        failed.append(f"{job_name} for {key}")
                        failed_stage[key] = f"{job_name} for {key}"
                failed.extend(undelivered(result))  # retried later, yet not a success now
        summary = summarize(instance, defs.resolve_asset_graph(), [run["run_id"] for run in runs], settings)
    if failed:
        progress(f"runs failed: {', '.join(failed)}; see their logs in the Dagster UI (make ui)")
    return {"assets": sum(len(keys) for _, _, keys in runs_to_do), "runs": runs, "failed": failed,
            "skipped": skipped, "summary": summary}


def _each_run(runs_to_do: list[tuple[str, dg.PartitionsDefinition | None, list[dg.AssetKey]]],
              workspaces: Workspaces, graph) -> list[tuple[str, list[str] | None, list[dg.AssetKey]]]:
    """The runs as (job, workspaces or None, keys), in the order they run: one after the other.

    A stage whose assets all take a single-run backfill policy (ingestion, insights) is one run over
    all its workspaces (a range of partitions); others (the weekly report) one run per workspace.

    Ingestion runs could run at once (each extract waits on its own API, and the warehouse lock is held
    only while a run loads: pipelines/ingest/pipeline.py), and they do as separate processes under
    the daemon's run queue. Not here: Dagster runs in threads of one process interleave their steps'
    stdout/stderr capture (fd redirection per step) and reconfigure logging per run, which lost the
    details log and, once in CI, deadlocked in logging's locks.
    """
    each = []
    for job_name, partitions, keys in runs_to_do:
        if partitions is None:
            each.append((job_name, None, keys))
            continue
        ids = [w.id for w in workspaces if w.id in partitions.get_partition_keys()]
        if all(_single_run(graph.get(key).backfill_policy) for key in keys):
            each.append((job_name, ids, keys))
        else:
            each.extend((job_name, [workspace_id], keys) for workspace_id in ids)
    return each


def _single_run(policy: dg.BackfillPolicy | None) -> bool:
    return policy is not None and policy.policy_type == BackfillPolicyType.SINGLE_RUN


def execute_stage_job(defs: dg.Definitions, job_name: str, keys: list[dg.AssetKey],
                      partition_keys: str | list[str] | None, instance: dg.DagsterInstance, run_config: dict,
                      tags: dict[str, str]) -> dg.JobExecutionResult:
    """One run of job `job_name` over `keys` (of one partition, or of a range of neighbouring
    `partition_keys`), in this process, recorded as a run of the code location of workspace.yaml
    (`execute_here`)."""
    return execute_here(defs.resolve_job_def(job_name), instance, keys=keys, partition_key=partition_keys,
                        run_config=run_config, tags=tags, repository=code_location_repository())


def code_location_repository() -> RemoteRepositoryOrigin:
    """The repository of the project's code location (workspace.yaml), as the UI and the daemon see it."""
    (location,) = location_origins_from_yaml_paths([str(WORKSPACE_FILE)])
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME)


def _supervised(instance: dg.DagsterInstance, settings: Settings, progress: Callable[[str], None],
                call: Callable[[], T]) -> T:
    """`call()` (one run) in a worker thread, while this thread watches over it.

    It frees pools held by dead runs of other processes (so a wait on a pool ends), and it stops
    the whole command, within seconds, on SIGTERM, Ctrl-C or a step over ABOS_STEP_TIMEOUT_SECONDS:
    the runs of this process are marked failed, their pool slots freed, and its children (dbt)
    stopped. What the killed step left half done is what a kill -9 leaves, which every step
    recovers from on its next run.
    """
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    timeout = settings.step_timeout_seconds
    interval = min(RECOVERY_INTERVAL_SECONDS, max(timeout / 2, 0.5)) if timeout else RECOVERY_INTERVAL_SECONDS
    worker = threading.Thread(target=work, name="abos-run", daemon=True)
    worker.start()
    checked = time.monotonic()
    try:
        while worker.is_alive():
            worker.join(0.2)
            if time.monotonic() - checked >= interval:
                checked = time.monotonic()
                _recover(instance, progress)
                overdue = overdue_steps(instance, runs_of_this_process(instance), timeout)
                if overdue:
                    _abort(instance, progress, overdue[0].message, 1)
    except Stopped as stopped:
        _abort(instance, progress, f"stopped by {stopped}", 128 + stopped.signum)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def _recover(instance: dg.DagsterInstance, progress: Callable[[str], None]) -> None:
    failed = recover_dead_runs(instance)
    if failed:
        progress(f"marked failed {len(failed)} runs whose process is gone, and freed their pool slots: "
                 + ", ".join(failed))


def _abort(instance: dg.DagsterInstance, progress: Callable[[str], None], reason: str, code: int) -> None:
    """Fail this process's runs with `reason`, free their slots, stop its children, and exit with `code`."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
    progress(reason)
    progress("failing this command's runs, freeing their pool slots, stopping its child processes")
    for run in runs_of_this_process(instance):
        instance.report_run_failed(run, reason)
    free_finished_runs_slots(instance)
    stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the run's thread cannot be interrupted; nothing it holds must outlive the process


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGTERM and SIGINT raise `Stopped` in the main thread while the block runs (elsewhere: unchanged)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame) -> None:
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def summarize(instance: dg.DagsterInstance, graph, run_ids: list[str], settings: Settings) -> dict[str, object]:
    """What the runs produced, read from their materializations: rows ingested and anomalies found per
    workspace, dbt models built, where each report is, and the outbox files the delivery wrote."""
    from pipelines.deliver.outbox import outbox_files

    workspaces: dict[str, dict[str, object]] = {}
    dbt_models: set[dg.AssetKey] = set()
    for run_id in run_ids:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for record in records:
            materialization = record.event_log_entry.asset_materialization
            key, metadata = materialization.asset_key, materialization.metadata
            node = graph.get(key)
            if "dbt" in node.kinds:
                dbt_models.add(key)
                continue
            if materialization.partition is None:
                continue
            workspace = workspaces.setdefault(materialization.partition, {"ingested_rows": 0})
            if (node.group_name or "").startswith("ingest_"):
                workspace["ingested_rows"] += _metadata_value(metadata, "rows_loaded", 0)
            elif key == ANOMALIES:
                workspace["anomalies"] = _metadata_value(metadata, "anomalies", 0)
            elif key == REPORTS:
                workspace["report"] = _metadata_value(metadata, "html", None)
        for path in outbox_files(settings, run_id=run_id):
            workspace_id = path.relative_to(settings.outbox_dir).parts[0]
            workspaces.setdefault(workspace_id, {"ingested_rows": 0}).setdefault("outbox", []).append(str(path))
    for workspace_id, facts in workspaces.items():
        if facts.get("report") and not facts.get("outbox"):
            # Delivered by an earlier run (a second `abos demo`): its files are there, not sent again.
            week = Path(str(facts["report"])).parent.name
            earlier = [str(p) for p in outbox_files(settings, workspace_id=workspace_id) if p.parent.name == week]
            if earlier:
                facts["delivered_before"] = earlier
    return {"dbt_models_built": len(dbt_models), "workspaces": workspaces}


def _metadata_value(metadata: dict, name: str, default: object) -> object:
    entry = metadata.get(name)
    return default if entry is None else entry.value
