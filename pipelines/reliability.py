"""How runs heal by themselves (docs/operations.md, "Reliability"): step retries, dead runs, step timeouts.

- **Retries.** The clients retry single requests themselves (429s, 5xx, throttling). `API_RETRY_POLICY`
  is the next layer: it reruns a whole step that still failed, with exponential backoff (30 s, 60 s,
  120 s, ± jitter), so a provider outage of a few minutes heals without an operator. A
  `dg.Failure(allow_retries=False)` (a configuration error: bad credentials, a missing setting) is
  not retried.
- **Dead runs.** A run whose process is gone (killed, crashed, its machine rebooted) stays STARTED
  in Dagster's storage and keeps its pool slots (`shopify_api`, ...), so every later run of that pool
  would wait forever. `recover_dead_runs` marks such runs failed and frees the slots every finished
  run still holds. `abos run` calls it before and while it runs; the `recover_runs` sensor calls it
  under the daemon. A run knows its process by the tags `abos run` gives it (host, pid), or, for a run
  the daemon launched as a local process, by the pid of its RUN_START event.
- **Step timeout.** A step running longer than `ABOS_STEP_TIMEOUT_SECONDS` (default 3 hours) fails
  its run: `overdue_steps` finds it, the `recover_runs` sensor terminates such runs, `abos run` stops.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRunStatus, RunRecord, RunsFilter
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

FRESHNESS_CHECK = "freshness_check"  # the name Dagster gives a freshness check

API_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

HOST_TAG = "abos/host"
PID_TAG = "abos/pid"
# Runs that hold a process: queued runs have none yet, and finished ones none any more.
LIVE_STATUSES = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                 DagsterRunStatus.CANCELING]
_STEP_STARTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED}
_STEP_ENDS = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
              dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_SKIPPED}


def process_tags() -> dict[str, str]:
    """Tags that tie a run executed in this process to it, for `recover_dead_runs`."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def execute_here(job: dg.JobDefinition, instance: dg.DagsterInstance, *, repository: RemoteRepositoryOrigin | None,
                 keys: list[dg.AssetKey] | None = None, partition_key: str | Sequence[str] | None = None,
                 run_config: dict | None = None, tags: dict[str, str] | None = None) -> dg.JobExecutionResult:
    """One run of `job` (over `keys`, or all its assets; of one partition, or of a range of neighbouring
    partitions given as a list) in this process, recorded as a run of the code location's
    `repository` and tied to this process (`process_tags`).

    `execute_in_process` and `materialize` record no code location: the UI's Overview timeline
    leaves such runs out ("No runs"), and it cannot re-execute them. So the run is created with
    the location's origin, then executed in process like `execute_in_process` does.
    """
    run_config = run_config or {}
    in_process = InMemoryJob(job.as_ephemeral_job(resource_defs={}, input_values={}).get_subset(
        asset_selection=frozenset(keys),
        asset_check_selection=run_checks(job.asset_layer.asset_graph.asset_check_keys, keys),  # no freshness checks
    ) if keys else job.as_ephemeral_job(resource_defs={}, input_values={}))
    if partition_key is not None and not isinstance(partition_key, str):
        tags, partition_key = {**(tags or {}), **run_tags(partition_key)}, None
    tags = merge_run_tags(job_def=job, partition_key=partition_key, tags={**(tags or {}), **process_tags()},
                          asset_selection=keys, instance=instance, run_config=run_config)
    run = instance.create_run_for_job(
        job_def=in_process.get_definition(), run_config=run_config, tags=tags,
        asset_selection=frozenset(keys) if keys else None,
        execution_plan=create_execution_plan(in_process, run_config=run_config, tags=tags,
                                             instance_ref=instance.get_ref() if instance.is_persistent else None),
        remote_job_origin=RemoteJobOrigin(repository, job.name) if repository else None,
    )
    return execute_run(in_process, run, instance)


def run_tags(keys: Sequence[str]) -> dict[str, str]:
    """The tags of a run over `keys` (neighbouring partitions, in their definition's order): one
    partition, or a range (a step over a range sees them as `context.partition_keys`)."""
    if len(keys) == 1:
        return {PARTITION_NAME_TAG: keys[0]}
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}


def runs_of_this_process(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The runs this process executes that have not finished."""
    tags = process_tags()
    return [record.dagster_run for record in instance.get_run_records(RunsFilter(statuses=LIVE_STATUSES, tags=tags))]


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs whose process is gone, then free the pool slots of every finished run.

    Returns:
        The ids of the runs marked failed.
    """
    failed = []
    for record in instance.get_run_records(RunsFilter(statuses=LIVE_STATUSES)):
        pid = _dead_worker(instance, record)
        if pid is not None:
            instance.report_run_failed(
                record.dagster_run,
                f"The run's process (pid {pid}) is gone: it was killed or crashed. Marked failed and its pool "
                "slots freed; rerun it (its steps are safe to rerun).",
            )
            failed.append(record.dagster_run.run_id)
    free_finished_runs_slots(instance)
    return failed


def free_finished_runs_slots(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots (and pending claims) held by runs that have finished or no longer exist."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holders = set(storage.get_concurrency_run_ids())
    for key in storage.get_concurrency_keys():
        holders |= {slot.run_id for slot in storage.get_concurrency_info(key).claimed_slots}
    freed = []
    for run_id in sorted(holders):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
    return freed


@dataclass(frozen=True)
class OverdueStep:
    run: dg.DagsterRun
    step_key: str
    seconds: float
    timeout: float

    @property
    def message(self) -> str:
        return (f"Step {self.step_key} ran for {self.seconds:.0f} s, longer than ABOS_STEP_TIMEOUT_SECONDS="
                f"{self.timeout:g} allows, so its run is failed. Raise the setting if the step is slow but sound.")


def overdue_steps(instance: dg.DagsterInstance, runs: list[dg.DagsterRun], timeout: float) -> list[OverdueStep]:
    """The steps of `runs` that started more than `timeout` seconds ago and have not ended (none if 0)."""
    if not timeout:
        return []
    overdue = []
    now = time.time()
    for run in runs:
        started: dict[str, float] = {}
        records = instance.get_records_for_run(run.run_id, of_type=_STEP_STARTS | _STEP_ENDS).records
        for record in records:
            entry = record.event_log_entry
            if entry.dagster_event_type in _STEP_STARTS:
                started[entry.step_key] = entry.timestamp
            else:
                started.pop(entry.step_key, None)
        overdue += [OverdueStep(run, step, now - at, timeout) for step, at in started.items() if now - at > timeout]
    return overdue


def _dead_worker(instance: dg.DagsterInstance, record: RunRecord) -> int | None:
    """The pid of the run's process if it is known, on this machine, and gone; else None."""
    run = record.dagster_run
    started = record.create_timestamp.timestamp()  # the worker existed by then
    if PID_TAG in run.tags:
        if run.tags.get(HOST_TAG) != socket.gethostname():
            return None  # another machine's run: only that machine can tell
        pid = int(run.tags[PID_TAG])
    elif isinstance(instance.run_launcher, DefaultRunLauncher):
        # The daemon launched it as a local process; runs in containers or pods have launchers that
        # Dagster's own run monitoring asks (check_run_worker_health).
        starts = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1).records
        event = starts[0].event_log_entry.dagster_event if starts else None
        if event is None or event.pid is None:
            return None  # not started yet: Dagster's start timeout covers it
        pid = event.pid
        # The daemon starts the worker when the run leaves the queue, seconds or minutes after the
        # run was created: the worker existed when it logged the start, not when the run was queued.
        started = starts[0].event_log_entry.timestamp
    else:
        return None
    try:
        # A pid reused by a process started after the run's worker is not the run's.
        alive = psutil.Process(pid).create_time() <= started + 1
    except psutil.NoSuchProcess:
        alive = False
    return None if alive else pid


def run_checks(checks: Iterable[dg.AssetCheckKey], keys: Iterable[dg.AssetKey]) -> frozenset[dg.AssetCheckKey]:
    """The checks a run that materializes `keys` evaluates: those of its assets but the freshness checks.

    A freshness check evaluated in the run that updates its asset can only pass, and it costs the run
    a lookup of the asset's latest update and a stored evaluation per asset (about a fifth of a tiny
    workspace's ingestion run on SQLite, with 19 raw tables); the `freshness_checks` sensor evaluates
    them on its own schedule. Other checks (deliveries_ok) judge what the run did, and run with it.
    """
    keys = set(keys)
    return frozenset(check for check in checks if check.asset_key in keys and check.name != FRESHNESS_CHECK)
