"""One step over many workspaces (`materialize_each`): each workspace materialized or failed on its own,
and a retry redoes only the workspaces the run has not materialized."""

import threading
import time
from collections.abc import Callable

import dagster as dg

from pipelines.partitions import FAILED_WORKSPACES, WorkspaceFailure, contiguous_ranges, materialize_each
from pipelines.reliability import run_tags

WORKSPACES = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
TABLE, SUMMARY = dg.AssetKey("table"), dg.AssetKey("summary")


def step(calls: list[tuple[str, int]], broken: dict[str, bool], workers: int = 1,
         meet: Callable[[], None] = lambda: None) -> dg.AssetsDefinition:
    """Two assets in one step over the run's workspaces, `workers` at once; `broken[w]` fails w
    (retryable if True) after its first asset is written; each workspace calls `meet` in between."""

    @dg.multi_asset(specs=[dg.AssetSpec(TABLE, skippable=True), dg.AssetSpec(SUMMARY, skippable=True, deps=[TABLE])],
                    partitions_def=WORKSPACES, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=True,
                    retry_policy=dg.RetryPolicy(max_retries=1))
    def each(context: dg.AssetExecutionContext):
        def work(workspace_id: str):
            calls.append((workspace_id, context.retry_number))
            yield TABLE, {"rows": len(workspace_id)}
            meet()
            if workspace_id in broken and (context.retry_number == 0 or not broken[workspace_id]):
                raise RuntimeError(f"{workspace_id} is broken")
            yield SUMMARY, {"ok": True}

        def failure(workspace_id: str, exc: Exception) -> WorkspaceFailure:
            return WorkspaceFailure(workspace_id, f"workspace {workspace_id!r}: {exc}", retryable=broken[workspace_id])

        yield from materialize_each(context, work, failure, workers=workers)

    return each


def materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> set[str]:
    return set(instance.get_materialized_partitions(key))


def test_a_failed_workspace_fails_alone_and_the_others_are_materialized():
    calls: list[tuple[str, int]] = []
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([step(calls, {"b": False})], instance=instance, raise_on_error=False,
                            tags=run_tags(["a", "b", "c", "d"]))
    assert not result.success
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("d", 0)]  # no retry: the failure is not retryable
    assert materialized(instance, SUMMARY) == {"a", "c", "d"}
    assert materialized(instance, TABLE) == {"a", "b", "c", "d"}  # b's table was written before it failed
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    data = failure.step_failure_data.user_failure_data
    assert data.description == "workspace 'b': b is broken"
    assert data.metadata[FAILED_WORKSPACES].value == "b"
    [materialization] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TABLE, asset_partitions=["c"]), limit=1).records
    assert materialization.asset_materialization.metadata["rows"].value == 1


def test_a_retry_redoes_only_the_workspaces_not_yet_materialized():
    calls: list[tuple[str, int]] = []
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([step(calls, {"b": True, "c": True})], instance=instance, raise_on_error=False,
                            tags=run_tags(["a", "b", "c"]))
    assert result.success  # b and c healed on the retry
    assert calls == [("a", 0), ("b", 0), ("c", 0), ("b", 1), ("c", 1)]
    assert materialized(instance, SUMMARY) == {"a", "b", "c"}


def test_several_failed_workspaces_are_each_named():
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([step([], {"a": False, "d": False})], instance=instance, raise_on_error=False,
                            tags=run_tags(["a", "b", "c", "d"]))
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    data = failure.step_failure_data.user_failure_data
    assert data.description.splitlines() == ["2 workspaces failed: a, d", "workspace 'a': a is broken",
                                             "workspace 'd': d is broken"]
    assert data.metadata[FAILED_WORKSPACES].value == "a,d"
    assert materialized(instance, SUMMARY) == {"b", "c"}


def test_workers_run_that_many_workspaces_at_once_and_a_failure_stays_its_own():
    # Each workspace waits at a barrier for a second one: with one workspace at a time it would wait
    # in vain (the barrier breaks after its timeout and every workspace fails).
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    running, most = [0], [0]

    def meet() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        barrier.wait()
        time.sleep(0.3)  # still running: a third workspace started meanwhile would be counted
        with lock:
            running[0] -= 1

    calls: list[tuple[str, int]] = []
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([step(calls, {"c": False}, workers=2, meet=meet)], instance=instance,
                            raise_on_error=False, tags=run_tags(["a", "b", "c", "d"]))
    assert most[0] == 2  # two at once, never three
    assert sorted(calls) == [("a", 0), ("b", 0), ("c", 0), ("d", 0)]
    assert materialized(instance, SUMMARY) == {"a", "b", "d"}
    assert materialized(instance, TABLE) == {"a", "b", "c", "d"}
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == "workspace 'c': c is broken"


def test_workspaces_left_out_split_a_range():
    assert contiguous_ranges(WORKSPACES, ["a", "b", "d"]) == [["a", "b"], ["d"]]
    assert contiguous_ranges(WORKSPACES, ["d", "c", "b", "a"]) == [["a", "b", "c", "d"]]
    assert run_tags(["a"]) == {"dagster/partition": "a"}
    assert run_tags(["a", "b"]) == {"dagster/asset_partition_range_start": "a",
                                    "dagster/asset_partition_range_end": "b"}
