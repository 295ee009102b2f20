"""The workspace partitions every stage shares: one partition per tenant of `workspaces.yaml`.

Ingestion is partitioned by the workspaces that use a connector, insights and delivery by every
workspace; the dbt models are unpartitioned (one build covers every workspace).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from pipelines.workspaces import Workspaces


def workspace_partitions(workspaces: Workspaces) -> dg.StaticPartitionsDefinition:
    """One partition per workspace."""
    return dg.StaticPartitionsDefinition(workspaces.ids)


def connector_partitions(workspaces: Workspaces, source: str) -> dg.StaticPartitionsDefinition:
    """One partition per workspace that uses connector `source` (shopify, stripe)."""
    return dg.StaticPartitionsDefinition([w.id for w in workspaces.by_connector(source)])


# -- runs over many workspaces ------------------------------------------------------------------
#
# The partitioned stages take `dg.BackfillPolicy.single_run()`: a backfill (the `refresh` sensor's)
# or `abos run` makes one run over a range of workspaces, not one run per workspace, so Dagster's
# fixed costs per run (its set-up, planned events, step events) are paid once per stage. The step
# works through the workspaces (one by one, or a few at once for ingestion: `ABOS_SYNC_WORKERS`) and
# records each workspace's materializations itself, with
# its partition (`materialize_each`), so one workspace's failure loses nothing of the others': they
# are materialized, the failed ones are not, and the step fails at the end naming them.

FAILED_WORKSPACES = "failed_workspaces"  # the metadata of a step's failure: the workspaces that failed, comma-separated


def contiguous_ranges(partitions: dg.PartitionsDefinition, keys: Iterable[str]) -> list[list[str]]:
    """`keys` as ranges of neighbouring partitions of `partitions`, in its order: what runs over a range
    can hold (all of them in one when nothing is left out between them)."""
    wanted = set(keys)
    ranges: list[list[str]] = []
    current: list[str] = []
    for key in partitions.get_partition_keys():
        if key in wanted:
            current.append(key)
        elif current:
            ranges.append(current)
            current = []
    return ranges + ([current] if current else [])


@dataclass(frozen=True)
class WorkspaceFailure:
    """Why one workspace of a step failed, and whether running the step again could help."""

    workspace_id: str
    reason: str
    retryable: bool


def materialize_each(context: dg.AssetExecutionContext,
                     work: Callable[[str], Iterable[tuple[dg.AssetKey, Mapping[str, Any]]]],
                     failure: Callable[[str, Exception], WorkspaceFailure],
                     workers: int = 1) -> Iterator[dg.MaterializeResult]:
    """Materialize the step's assets for each workspace of its run.

    `work(workspace_id)` does one workspace's work and yields each asset it updated with its metadata;
    each is recorded as that asset's materialization of the workspace's partition. A workspace whose
    work raises is materialized no further; `failure` says why, and the others go on. At the end the step fails
    if any workspace failed, naming each (a `dg.Failure` with `FAILED_WORKSPACES` in its metadata);
    it is retried (its retry policy) only if one of the failures is retryable, and a retry skips
    the workspaces this run materialized already.

    With `workers` 1 the workspaces run one after the other; with more (the ingestion's
    `ABOS_SYNC_WORKERS`), up to `workers` of them at once in threads of the step (`_side_by_side`).
    A workspace's materializations are recorded by the step's own thread when its work ends, in the
    order the workspaces end.

    A run of one workspace yields its materializations as the step's outputs instead (the step's
    function does `yield from`), so assets downstream in the same run still run: the weekly report
    materialized with the insights (by hand in the UI, in tests), the dbt models after a targeted
    sync. Over several workspaces Dagster can output only the whole range, so there the step yields
    nothing and assets downstream in the same run are skipped; `abos run` and the schedules run each
    stage in its own run.
    """
    single = len(context.partition_keys) == 1
    done = materialized_in_run(context)
    todo = [workspace_id for workspace_id in context.partition_keys if workspace_id not in done]
    failures: list[WorkspaceFailure] = []
    for workspace_id, written, error in _side_by_side(todo, work, workers):
        for key, metadata in written:
            if single:
                yield dg.MaterializeResult(asset_key=key, metadata=dict(metadata))
            else:
                context.log_event(dg.AssetMaterialization(key, partition=workspace_id, metadata=dict(metadata)))
        if error is not None:
            # One workspace's failure is its own (DESIGN.md, Tenancy): the others go on.
            found = failure(workspace_id, error)
            context.log.error(found.reason)
            failures.append(found)
    if failures:
        failures.sort(key=lambda f: todo.index(f.workspace_id))  # in the run's order, however they ended
        ids = [f.workspace_id for f in failures]
        lines = [f.reason for f in failures]
        description = lines[0] if len(lines) == 1 else "\n".join(
            [f"{len(ids)} workspaces failed: {', '.join(ids)}", *lines])
        raise dg.Failure(description=description, metadata={FAILED_WORKSPACES: ",".join(ids)},
                         allow_retries=any(f.retryable for f in failures))


Written = list[tuple[dg.AssetKey, Mapping[str, Any]]]


def _side_by_side(workspace_ids: list[str], work: Callable[[str], Iterable[tuple[dg.AssetKey, Mapping[str, Any]]]],
                  workers: int) -> Iterator[tuple[str, Written, Exception | None]]:
    """(workspace, what its work yielded, the exception that ended it or None) for each workspace.

    With one worker in order, in the caller's thread; with more, up to `workers` at once in daemon
    threads, in the order they end. Daemon threads, so that a step stopped meanwhile (a terminated
    run, `abos run` exiting) does not wait for the work still running.
    """
    def collect(workspace_id: str) -> tuple[str, Written, Exception | None]:
        written: Written = []
        try:
            for item in work(workspace_id):
                written.append(item)
        except Exception as exc:  # noqa: BLE001 - handed to `failure` by the caller
            return workspace_id, written, exc
        return workspace_id, written, None

    if workers <= 1 or len(workspace_ids) <= 1:
        for workspace_id in workspace_ids:
            yield collect(workspace_id)
        return
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for workspace_id in workspace_ids:
        todo.put(workspace_id)
    ended: queue.SimpleQueue[tuple[str, Written, Exception | None]] = queue.SimpleQueue()

    def worker() -> None:
        while True:
            try:
                workspace_id = todo.get_nowait()
            except queue.Empty:
                return
            ended.put(collect(workspace_id))

    for number in range(min(workers, len(workspace_ids))):
        threading.Thread(target=worker, name=f"abos-workspace-{number}", daemon=True).start()
    for _ in workspace_ids:
        yield ended.get()


def materialized_in_run(context: dg.AssetExecutionContext) -> set[str]:
    """The workspaces whose every selected asset this run materialized already (an earlier try of the step)."""
    if context.retry_number == 0:
        return set()
    return fully_materialized(context.instance, context.run.run_id, context.selected_asset_keys)


def fully_materialized(instance: dg.DagsterInstance, run_id: str, keys: Iterable[dg.AssetKey]) -> set[str]:
    """The partitions of which run `run_id` materialized every one of `keys`."""
    keys = set(keys)
    seen: dict[str, set[dg.AssetKey]] = {}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.partition is not None:
            seen.setdefault(materialization.partition, set()).add(materialization.asset_key)
    return {partition for partition, found in seen.items() if keys <= found}
