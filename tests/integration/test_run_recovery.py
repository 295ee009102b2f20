"""Runs that recover by themselves (issue 19, "stuck"), on the real Dagster instance `abos` writes.

The probe's case: runs killed with `kill -9` inside a step of the `shopify_api` pool keep its two
slots, and the next run waits on `Step blocked by limit for pool shopify_api` forever, ignoring
SIGTERM and SIGINT. Here the killed runs are real processes holding real slots.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from pipelines.orchestration import recover_runs
from pipelines.reliability import PID_TAG, overdue_steps, recover_dead_runs
from pipelines.run import dagster_instance
from pipelines.settings import load_settings
from tests.conftest import REPO

POOL = "shopify_api"
SLOT_WAIT = 300  # seconds for started runs to claim their slots on a busy machine
# A run of one asset in the `shopify_api` pool, executed the way `abos run` executes its runs.
HOLDER = textwrap.dedent("""
    import sys, time
    import dagster as dg
    from pipelines.reliability import process_tags

    @dg.asset(pool="shopify_api")
    def holds_a_slot() -> None:
        time.sleep(float(sys.argv[1]))

    with dg.DagsterInstance.get() as instance:  # DAGSTER_HOME, with the dagster.yaml `abos` wrote
        result = dg.materialize([holds_a_slot], instance=instance, tags=process_tags())
        print("RUN", result.run_id, result.success, flush=True)
""")


@pytest.fixture
def instance(abos_home):
    with dagster_instance(load_settings()) as instance:
        yield instance


def hold_a_slot(seconds: float) -> subprocess.Popen:
    # Each holder starts a Python with Dagster: tens of seconds while another test builds with dbt,
    # so the waits for their slots allow minutes (SLOT_WAIT). Its log goes to a file: nobody reads a
    # pipe while it waits, and a full pipe would stop it.
    log = tempfile.TemporaryFile("w+")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(seconds)], cwd=REPO, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=log, text=True)
    holder.log = log
    return holder


def finished(holder: subprocess.Popen, timeout: float | None = None) -> tuple[str, str]:
    """A holder's stdout and log, once it exited."""
    out, _ = holder.communicate(timeout=timeout)
    holder.log.seek(0)
    return out, holder.log.read()


def claimed(instance: dg.DagsterInstance) -> list[str]:
    """The run ids holding a slot of the pool."""
    return sorted(slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots)


def wait_for(condition, timeout: float = 90, what: str = "", holders: tuple[subprocess.Popen, ...] = ()) -> None:
    """Wait for `condition`; a holder that exited meanwhile fails the wait at once, with its output."""
    deadline = time.monotonic() + timeout
    while not condition():
        for holder in holders:
            if holder.poll() is not None:
                out, err = finished(holder)
                pytest.fail(f"a run holding a slot exited ({holder.returncode}) while waiting for {what}:\n"
                            f"{out[-2000:]}\n{err[-4000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def waiting_on_the_pool(instance: dg.DagsterInstance) -> list[str]:
    """The run ids with a step waiting for a slot of the pool."""
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [step.run_id for step in info.pending_steps if step.assigned_timestamp is None]


def runs_holding_both_slots(instance: dg.DagsterInstance) -> list[subprocess.Popen]:
    """Two runs, each holding one of the pool's two slots, started one after the other.

    Not both at once: on SQLite storage, Dagster's claim of a slot is a select of a free slot row,
    then an update of that row by its id alone. Two processes that claim at the same moment both
    pick the first free row, both update it and both run, while one slot shows claimed and the
    other free (seen in CI: the wait below for two claimed slots then never ended). Postgres locks
    the row it selects (`for update skip locked`); SQLite ignores that.
    """
    holders: list[subprocess.Popen] = []
    for slots in (1, 2):
        holders.append(hold_a_slot(600))
        wait_for(lambda n=slots: len(claimed(instance)) == n, timeout=SLOT_WAIT,
                 what=f"{slots} run(s) holding the pool's slots", holders=tuple(holders))
    return holders


def test_a_killed_run_is_failed_and_its_slots_freed_so_a_waiting_run_goes_on(instance):
    killed = runs_holding_both_slots(instance)
    dead_runs = claimed(instance)
    for process in killed:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # The probe's reproduction: a third run waits on the pool, and would wait forever.
    waiting = hold_a_slot(0)
    wait_for(lambda: waiting_on_the_pool(instance), timeout=SLOT_WAIT, what="the third run to wait on the pool")
    time.sleep(3)
    assert waiting.poll() is None and claimed(instance) == dead_runs
    assert {instance.get_run_by_id(r).status for r in dead_runs} == {dg.DagsterRunStatus.STARTED}

    assert sorted(recover_dead_runs(instance)) == dead_runs  # the waiting run is alive: left alone
    out, err = finished(waiting, timeout=60)
    assert waiting.returncode == 0 and " True" in out, err[-2000:]
    for run_id in dead_runs:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert f"pid {run.tags[PID_TAG]}" in failure[0].event_log_entry.dagster_event.message
    assert claimed(instance) == []
    assert recover_dead_runs(instance) == []


def test_slots_of_a_run_marked_failed_by_hand_are_freed(instance):
    """The probe marked the dead runs failed in the UI, and the slots stayed taken."""
    killed = runs_holding_both_slots(instance)
    for process in killed:
        process.send_signal(signal.SIGKILL)
        process.wait()
    for run_id in claimed(instance):
        instance.report_run_failed(instance.get_run_by_id(run_id), "marked failed by the operator")
    assert len(claimed(instance)) == 2
    assert recover_dead_runs(instance) == []  # nothing left to fail...
    assert claimed(instance) == []            # ...and the slots are free


def test_the_recover_runs_sensor_fails_dead_runs_and_stops_a_step_over_the_timeout(instance, monkeypatch):
    killed, running = runs_holding_both_slots(instance)
    live = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))]
    assert len(live) == 2
    # A slot is claimed before the step's start is logged: a kill in between leaves a step that never
    # started, which no timeout can find (CI hit it once). Kill only once both steps have started.
    wait_for(lambda: len(overdue_steps(instance, live, 1e-6)) == 2, timeout=SLOT_WAIT, what="both steps started")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    monkeypatch.setenv("ABOS_STEP_TIMEOUT_SECONDS", "2")
    settings = load_settings()
    wait_for(lambda: len(overdue_steps(instance, live, settings.step_timeout_seconds)) == 2,
             what="both steps to run longer than 2 s")
    assert overdue_steps(instance, live, 0) == []  # 0: no limit

    sensor = recover_runs(settings)
    skip = sensor(dg.build_sensor_context(instance=instance))
    assert "1 dead runs failed, 1 overdue runs stopped" in skip.skip_message
    assert {r.dagster_run.status for r in instance.get_run_records()} == {dg.DagsterRunStatus.FAILURE}
    overdue = [r for r in instance.get_run_records()
               if "ABOS_STEP_TIMEOUT_SECONDS" in (instance.get_records_for_run(
                   r.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
                   .event_log_entry.dagster_event.message or "")]
    assert len(overdue) == 1
    assert claimed(instance) == []
    running.kill()
    running.wait()


# -- `abos run` and `abos demo` stop within seconds ---------------------------------------------------


@pytest.fixture
def silent_shop(tmp_path):
    """A workspaces file whose shop answers nothing: the server accepts connections and never replies."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(yaml.safe_dump({"workspaces": [{
        "id": "silent-shop", "name": "Silent", "vertical": "ecommerce", "timezone": "Europe/Berlin",
        "currency": "EUR", "connectors": {"shopify": {
            "base_url": f"http://127.0.0.1:{server.getsockname()[1]}/shops/silent-shop",
            "access_token_env": "SILENT_SHOP_TOKEN"}},
    }]}))
    yield tenants
    server.close()


def abos(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "abos"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ABOS_WAREHOUSE_URL", "ABOS_DAGSTER_PG_URL")}
    return {**env, "SILENT_SHOP_TOKEN": "shpat_test", **extra}


@pytest.mark.slow  # `abos run` loads the Definitions: a minute or more on a busy machine
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_abos_run_stops_within_seconds_even_waiting_on_a_pool(instance, silent_shop, signum):
    """Whatever the run is doing: waiting on the pool the holders keep (the probe's case), dbt over the
    models that read no ingested table (they run first here), or a request to a shop that never answers."""
    holders = runs_holding_both_slots(instance)  # alive: `abos run` must wait for them
    try:
        process = abos("run", "--workspaces", str(silent_shop), env=run_env())

        def started() -> bool:
            assert process.poll() is None, process.communicate()[1][-3000:]
            return bool(instance.get_run_records(dg.RunsFilter(tags={PID_TAG: str(process.pid)},
                                                               statuses=[dg.DagsterRunStatus.STARTED])))

        wait_for(started, timeout=300, what="`abos run` to start a run")
        time.sleep(2)
        children = psutil.Process(process.pid).children(recursive=True)
        sent = time.monotonic()
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
        assert time.monotonic() - sent < 15
        assert process.returncode == 128 + signum, err[-2000:]
        assert f"stopped by {signal.Signals(signum).name}" in err
        ours = instance.get_run_records(dg.RunsFilter(tags={PID_TAG: str(process.pid)}))
        assert {r.dagster_run.status for r in ours} == {dg.DagsterRunStatus.FAILURE}
        assert not set(claimed(instance)) & {r.dagster_run.run_id for r in ours}
        assert len(claimed(instance)) == 2  # the live holders keep theirs
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


@pytest.mark.slow
def test_a_step_over_the_timeout_stops_abos_run_naming_the_setting(instance, silent_shop):
    process = abos("run", "--workspaces", str(silent_shop), env=run_env(ABOS_STEP_TIMEOUT_SECONDS="3"))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-2000:]
    assert "longer than ABOS_STEP_TIMEOUT_SECONDS=3 allows" in err
    ours = instance.get_run_records(dg.RunsFilter(tags={PID_TAG: str(process.pid)}))
    # The ingestion runs (the shop's and the exchange rates') start together: all of them are failed.
    assert ours and {r.dagster_run.status for r in ours} == {dg.DagsterRunStatus.FAILURE}
    assert not psutil.pid_exists(process.pid) or psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE


# A run's worker as the daemon's DefaultRunLauncher starts it: a process of its own, started once the
# run leaves the queue, that logs RUN_START with its pid (then works for a while).
WORKER = textwrap.dedent("""
    import os, sys, time
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(sys.argv[1])
        instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name,
                                                   pid=os.getpid()), run_id=run.run_id)
        print("started", flush=True)
        time.sleep(600)
""")


def test_a_daemon_run_started_well_after_it_was_queued_is_alive(instance):
    """The freshness bench's case: the daemon launched webhook_transform 7 s after queuing it, and the
    recovery took the worker, younger than the run, for a pid reused by another process."""
    if not isinstance(instance.run_launcher, dg.DefaultRunLauncher):
        pytest.fail("abos' instance launches runs as local processes (DefaultRunLauncher)")
    run = instance.add_run(dg.DagsterRun(job_name="webhook_transform", status=dg.DagsterRunStatus.STARTED))
    time.sleep(2.5)  # in the queue
    worker = subprocess.Popen([sys.executable, "-c", WORKER, run.run_id], cwd=REPO, env=dict(os.environ),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "started"
        assert recover_dead_runs(instance) == []
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        worker.kill()
        worker.wait()
        assert recover_dead_runs(instance) == [run.run_id]  # gone: failed
    finally:
        if worker.poll() is None:
            worker.kill()
