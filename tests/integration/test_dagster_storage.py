"""Dagster's SQLite storage with the event log's connections kept per process (pipelines/dagster_storage.py,
deploy/dagster.yaml): the same files as Dagster's default, far fewer SQLite connections, and correct with
several processes (daemon, webserver, run workers) writing the same instance at once."""

import concurrent.futures
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap

import dagster as dg
import pytest
import sqlalchemy
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from pipelines.dagster_storage import KEPT_RUN_SHARDS, KeptConnectionsEventLogStorage
from pipelines.run import dagster_instance
from pipelines.settings import load_settings

WORKSPACES = dg.StaticPartitionsDefinition([f"t{i:04d}" for i in range(4)])


@dg.asset(key=["raw", "probe"], partitions_def=WORKSPACES)
def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"workspace": context.partition_key})


def _materialization(i: int) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(asset_key=["raw", "runless"], partition=f"t{i % 4:04d}", metadata={"i": i})


@pytest.fixture
def counted_connects():
    """The files of the new SQLite connections SQLAlchemy opens while the test runs (every engine)."""
    opened: list[str] = []

    def connected(dbapi_connection, record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            opened.append(dbapi_connection.execute("pragma database_list").fetchone()[2])

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", connected)
    yield opened
    sqlalchemy.event.remove(sqlalchemy.pool.Pool, "connect", connected)


def test_the_project_instance_keeps_the_event_logs_connections_in_dagsters_own_files(abos_home, counted_connects):
    with dagster_instance(load_settings()) as instance:
        assert isinstance(instance.event_log_storage, KeptConnectionsEventLogStorage)
        counted_connects.clear()  # the instance's own start (index and schema checks) aside
        for i in range(40):
            instance.report_runless_asset_event(_materialization(i))
        result = dg.materialize([probe], partition_key="t0001", instance=instance)
        assert result.success
        # Dagster's default storage opens a connection to the run's shard for every event and one to the
        # index for every asset event (here 40 + 40 for the runless events, ~15 for the run): kept, a
        # shard's connection is opened once, plus those of Dagster's check of a new shard's schema.
        event_log = [name for name in counted_connects if "/history/runs/" in name]
        assert 0 < len(event_log) <= 8, sorted(event_log)

    # Dagster's own storage, on the same directory, reads what was written (same files and tables).
    stock = SqliteEventLogStorage(str(abos_home / "dagster" / "history" / "runs"))
    assert stock.get_event_records(dg.EventRecordsFilter(
        dg.DagsterEventType.ASSET_MATERIALIZATION, asset_key=dg.AssetKey(["raw", "runless"])), limit=100).__len__() == 40
    assert {r.event_log_entry.dagster_event.event_type for r in stock.get_records_for_run(result.run_id).records} >= {
        dg.DagsterEventType.STEP_START, dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_SUCCESS}
    stock.dispose()


def test_an_instance_loaded_from_its_directory_keeps_its_files_there_whatever_dagster_home_says(
        abos_home, tmp_path, monkeypatch):
    dagster_instance(load_settings()).dispose()  # writes the project's dagster.yaml into abos_home/dagster
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(elsewhere))
    with dg.DagsterInstance.from_config(str(abos_home / "dagster")) as instance:
        assert isinstance(instance.event_log_storage, KeptConnectionsEventLogStorage)
        instance.report_runless_asset_event(_materialization(7))
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_config(str(abos_home / "dagster")) as instance:
        instance.report_runless_asset_event(_materialization(8))
    assert not any(elsewhere.iterdir())
    stock = SqliteEventLogStorage(str(abos_home / "dagster" / "history" / "runs"))
    records = stock.get_event_records(dg.EventRecordsFilter(
        dg.DagsterEventType.ASSET_MATERIALIZATION, asset_key=dg.AssetKey(["raw", "runless"])), limit=10)
    assert sorted(r.asset_materialization.metadata["i"].value for r in records) == [7, 8]
    stock.dispose()


def test_a_process_keeps_connections_to_the_index_and_the_last_few_run_shards_only(abos_home):
    storage = KeptConnectionsEventLogStorage(str(abos_home / "events"))
    for i in range(KEPT_RUN_SHARDS + 3):
        with storage.run_connection(f"run{i}") as conn:
            conn.execute(sqlalchemy.text("select 1"))
    with storage.index_connection() as conn:
        conn.execute(sqlalchemy.text("select 1"))
    assert list(storage._engines) == [f"run{i}" for i in range(3, KEPT_RUN_SHARDS + 3)] + ["index"]
    storage.dispose()
    assert not storage._engines


def _store_in_child(base_dir: str, parent: KeptConnectionsEventLogStorage, done) -> None:
    try:
        inherited = dict(parent._engines)
        for i in range(5):
            parent.store_event(_runless_entry(i))
        assert all(parent._engines[name] is not engine for name, engine in inherited.items() if name in parent._engines)
        done.put("ok")
    except Exception as error:  # noqa: BLE001 - reported to the parent, which asserts
        done.put(repr(error))


def _runless_entry(i: int):
    import time

    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "runless",
                         event_specific_data=StepMaterializationData(_materialization(i)))
    return EventLogEntry(error_info=None, level="debug", user_message="", run_id="", timestamp=time.time(),
                         dagster_event=event)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_process_opens_its_own_connections_and_the_parents_keep_working(abos_home):
    storage = KeptConnectionsEventLogStorage(str(abos_home / "events"))
    storage.store_event(_runless_entry(100))
    assert "index" in storage._engines
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_store_in_child, args=(str(abos_home / "events"), storage, done))
    child.start()
    assert done.get(timeout=120) == "ok"
    child.join(timeout=60)
    storage.store_event(_runless_entry(101))  # the parent's kept connection still works after the child ended
    records = storage.get_event_records(dg.EventRecordsFilter(
        dg.DagsterEventType.ASSET_MATERIALIZATION, asset_key=dg.AssetKey(["raw", "runless"])), limit=100)
    assert sorted(r.asset_materialization.metadata["i"].value for r in records) == [0, 1, 2, 3, 4, 100, 101]
    storage.dispose()


def test_threads_of_one_process_share_the_kept_connections(abos_home):
    """The webserver's event watcher reads from its own thread while others store."""
    storage = KeptConnectionsEventLogStorage(str(abos_home / "events"))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: storage.store_event(_runless_entry(i)), range(40)))
    records = storage.get_event_records(dg.EventRecordsFilter(
        dg.DagsterEventType.ASSET_MATERIALIZATION, asset_key=dg.AssetKey(["raw", "runless"])), limit=100)
    assert sorted(r.asset_materialization.metadata["i"].value for r in records) == list(range(40))
    storage.dispose()


WRITER = textwrap.dedent("""
    import sys, time
    import dagster as dg
    name, rounds = sys.argv[1], int(sys.argv[2])
    WORKSPACES = dg.StaticPartitionsDefinition([f"t{i:04d}" for i in range(4)])

    @dg.asset(key=["raw", "probe"], partitions_def=WORKSPACES)
    def probe(context):
        for i in range(3):
            context.log_event(dg.AssetObservation(asset_key=["raw", "probe"], partition=context.partition_key))
        return dg.MaterializeResult(metadata={"writer": name})

    with dg.DagsterInstance.get() as instance:
        print(type(instance.event_log_storage).__name__, flush=True)
        for r in range(rounds):
            assert dg.materialize([probe], partition_key=f"t{r % 4:04d}", instance=instance).success
            for i in range(5):
                instance.report_runless_asset_event(dg.AssetMaterialization(
                    asset_key=["raw", "runless"], partition=f"t{i % 4:04d}", metadata={"writer": name, "i": r * 5 + i}))
            # as the webserver and the daemon do: read the asset's history while others write
            instance.fetch_materializations(dg.AssetKey(["raw", "probe"]), limit=1000)
            instance.get_run_records(limit=50)
""")


def test_several_processes_write_one_instance_at_once_and_every_event_is_stored(abos_home, tmp_path):
    """Four processes on the project's storage (as the daemon, the webserver and run workers) and one on
    Dagster's default storage over the same files, each running partitioned runs and storing runless
    materializations while reading the history: no event lost, no `database is locked`."""
    dagster_instance(load_settings()).dispose()  # writes the project's dagster.yaml into DAGSTER_HOME
    home = abos_home / "dagster"
    stock_home = tmp_path / "stock-dagster"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home}\n")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rounds = 6
    writers = [(f"w{i}", home) for i in range(4)] + [("stock", stock_home)]
    processes = [subprocess.Popen([sys.executable, str(script), name, str(rounds)], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "DAGSTER_HOME": str(dagster_home)})
                 for name, dagster_home in writers]
    outputs = [process.communicate(timeout=1200) for process in processes]
    for (name, _), process, (out, err) in zip(writers, processes, outputs):
        assert process.returncode == 0, f"{name}: {err[-3000:]}"
        assert "database is locked" not in err
        assert out.split()[0] == ("SqliteEventLogStorage" if name == "stock" else "KeptConnectionsEventLogStorage")

    with dagster_instance(load_settings()) as instance:
        runless = instance.fetch_materializations(dg.AssetKey(["raw", "runless"]), limit=10_000).records
        by_writer: dict[str, list[int]] = {}
        for record in runless:
            metadata = record.asset_materialization.metadata
            by_writer.setdefault(metadata["writer"].value, []).append(metadata["i"].value)
        assert {name: sorted(values) for name, values in by_writer.items()} == {
            name: list(range(rounds * 5)) for name, _ in writers}
        probes = instance.fetch_materializations(dg.AssetKey(["raw", "probe"]), limit=10_000).records
        assert len(probes) == rounds * len(writers)
        runs = instance.get_run_records()
        assert len(runs) == rounds * len(writers)
        assert {r.dagster_run.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        for run in runs:  # each run's own shard holds its whole log
            events = [r.event_log_entry.dagster_event.event_type
                      for r in instance.get_records_for_run(run.dagster_run.run_id).records
                      if r.event_log_entry.dagster_event]
            assert events.count(dg.DagsterEventType.ASSET_OBSERVATION) == 3
            assert events[-1] == dg.DagsterEventType.RUN_SUCCESS
        # the per-partition index agrees with the events (the materialized partitions of the asset)
        assert instance.get_materialized_partitions(dg.AssetKey(["raw", "probe"])) == {
            f"t{r % 4:04d}" for r in range(rounds)}

