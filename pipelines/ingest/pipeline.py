"""dlt pipelines: one per (source, workspace), all writing to the one warehouse (pipelines/warehouse.py).

Raw tables of every workspace share one dataset per source (`shopify`, `stripe`) and carry
`workspace_id`; each workspace has its own pipeline so cursors never mix. dlt keeps pipeline
state in the destination (`<dataset>._dlt_pipeline_state`), so a lost local pipeline directory is
restored from the warehouse instead of causing a full reload.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import dlt
from dlt.common.exceptions import TerminalException

from pipelines.ingest import existing
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import WorkspaceError


# Arrow tables (the Shopify bulk fast path) get the same `_dlt_load_id` and `_dlt_id` columns as
# dict rows: dbt's incremental models read `_dlt_load_id`. dlt reads this setting from the environment.
for _option in ("ADD_DLT_LOAD_ID", "ADD_DLT_ID"):
    os.environ.setdefault(f"NORMALIZE__PARQUET_NORMALIZER__{_option}", "true")
# A load job the destination refuses for good aborts its package: dlt then restores the pipeline
# state (the cursors) that the package's extract had advanced, and deletes the package, so the
# next sync reads the same changes again instead of being stuck behind it or skipping them. The
# destination never holds that package's state either: dlt restores state only from completed
# loads (`_dlt_loads.status = 0`), written after every job of the package succeeded.
os.environ.setdefault("LOAD__AUTO_ABORT_ON_TERMINAL_ERROR", "true")
# Each batch a connector's reading resource yields goes through all of its table transformers before
# the next batch is read. dlt's default ("round_robin") starts on the next batch while the earlier
# ones still wait for their transformers, up to 20 of them (its `max_parallel_items`) held at once:
# 20 batches of 5,000 rows, about a gigabyte of Stripe events (docs/performance.md, 2026-12-05).
os.environ.setdefault("EXTRACT__NEXT_ITEM_MODE", "fifo")
# Load files are written uncompressed: dlt gzips its csv and SQL files (Postgres' load files; parquet
# compresses itself) at gzip's slowest level, 70% of a Stripe sync's normalize CPU at large@0.1
# (docs/performance.md, "Postgres' load files"). dlt then keeps a loaded package's files, copies of raw
# rows nobody reads again (privacy.py deletes them for a subject): deleted once their package has
# loaded, so the uncompressed files take no lasting disk. A package not fully loaded keeps them.
os.environ.setdefault("NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION", "true")
os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")


# The operator channel: alert(title, text), e.g. `functools.partial(alert_operator, settings)`.
Alert = Callable[[str, str], object]


def pipeline_name(source: str, workspace_id: str, targeted: bool = False) -> str:
    return f"{source}__{workspace_id.replace('-', '_')}" + ("__targeted" if targeted else "")


def dlt_pipeline(source: str, workspace_id: str, settings: Settings, warehouse: Warehouse | None = None,
                 targeted: bool = False) -> dlt.Pipeline:
    """The pipeline that loads `source` for one workspace into the `source` dataset of `warehouse`
    (an asset's resource; default: the settings' warehouse).

    A targeted sync (objects named by webhooks) has a pipeline of its own: it keeps no cursor, and
    its working directory is not the scheduled sync's, so the two may run at the same time.
    """
    return dlt.pipeline(
        pipeline_name=pipeline_name(source, workspace_id, targeted),
        pipelines_dir=str(settings.home / "dlt"),
        destination=(warehouse or settings.warehouse).dlt_destination(),
        dataset_name=source,
        progress="log",
    )


def merge_hints(primary_key: tuple[str, ...], parent_key: tuple[str, ...] | None) -> dict[str, Any]:
    """dlt hints of a raw table merged by `delete-insert`: `write_disposition`, `primary_key`, `columns`.

    A child table (one with a `parent_key`, e.g. order lines by `(workspace_id, order_id)`) is
    replaced as a whole for every parent in the load, so a line removed by an order edit does not
    linger. dlt's `merge_key` would do that, but combined with the primary key it deletes on
    `primary key OR merge key`, which no database hash-joins (minutes per incremental load into a
    table of millions of lines; docs/performance.md). So the replacement is a `destination_scope`,
    an equality semi-join on the parent key, and the primary key stays for what it does best:
    deduplicating the staged rows, which a load killed and completed by the next run can hold twice.
    Columns that were a merge key in schemas stored before are cleared of it. When both keys start
    with `workspace_id`, the merge deletes only rows of the workspaces it loads, and the column says so
    (`x-merge-partition`): on DuckDB a workspace's first load then goes straight into the table
    (pipelines/duckdb_first_load.py).
    """
    disposition: dict[str, Any] = {"disposition": "merge", "strategy": "delete-insert"}
    columns: dict[str, dict[str, Any]] = {}
    if parent_key:
        match = " and ".join(f'staged."{name}" = {{table}}."{name}"' for name in parent_key)
        disposition["destination_scope"] = f"exists (select 1 from {{staging_table}} as staged where {match})"
        columns = {name: {"merge_key": False} for name in parent_key}
    if primary_key[0] == "workspace_id" and (not parent_key or parent_key[0] == "workspace_id"):
        columns["workspace_id"] = {**columns.get("workspace_id", {}), "x-merge-partition": True}
    return {"write_disposition": disposition, "primary_key": list(primary_key), "columns": columns}


@dataclass
class SyncStats:
    """What a connector reports about one sync, for the asset's metadata and logs."""

    mode: str = "incremental"  # "full" or "incremental"
    requests: int = 0
    retries: int = 0
    throttle_wait_seconds: float = 0.0  # pacing and back-off before retries
    bulk_wait_seconds: float = 0.0  # waiting for Shopify to prepare bulk exports
    notes: list[str] = field(default_factory=list)  # e.g. "event cursor expired: full resync"
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of extract, normalize, load
    rows: dict[str, int] = field(default_factory=dict)  # rows normalized per table
    arrow_rows: int = 0  # rows handed to dlt as Arrow tables (the rest as dicts, which dlt normalizes row by row)
    quarantined: dict[str, list[str]] = field(default_factory=dict)  # object table -> "<id>: <field> <reason>"
    quarantined_objects: dict[str, int] = field(default_factory=dict)  # object table -> objects set aside
    gone: dict[str, list[str]] = field(default_factory=dict)  # object table -> ids a targeted read found deleted
    nul_removed: int = 0  # NUL characters removed from text (Postgres cannot store them)
    surrogates_replaced: int = 0  # lone surrogates replaced by U+FFFD (no UTF-8 text holds one)
    api_time: datetime | None = None  # the API's clock (its newest `Date` header): "now" for the contracts

    def saw_api_date(self, header: str | None) -> None:
        """Keep the newest `Date` response header: the API's own clock, whatever this machine's says."""
        if not header:
            return
        try:
            moment = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        if self.api_time is None or moment > self.api_time:
            self.api_time = moment

    @property
    def now(self) -> datetime:
        return self.api_time or datetime.now(timezone.utc)

    def as_metadata(self) -> dict[str, object]:
        return {
            "sync_mode": self.mode,
            "api_requests": self.requests,
            "api_retries": self.retries,
            "throttle_wait_seconds": round(self.throttle_wait_seconds, 3),
            "quarantined_objects": sum(self.quarantined_objects.values()),
            "nul_characters_removed": self.nul_removed,
            "lone_surrogates_replaced": self.surrogates_replaced,
            "notes": "; ".join(self.notes) or "none",
        }


@dataclass
class Steps:
    """What `run_steps` did: the source's state before the sync, and dlt's normalize and load info."""

    before: dict[str, Any]
    normalized: Any  # dlt's NormalizeInfo (`row_counts` per table)
    load_info: Any  # dlt's LoadInfo


@contextmanager
def _one_run_at_a_time(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Holds the pipeline's own lock: two runs of one pipeline (its working directory) never overlap,
    on either warehouse, while runs of different pipelines extract at the same time."""
    path = os.path.join(pipeline.pipelines_dir, f"{pipeline.pipeline_name}.lock")
    os.makedirs(pipeline.pipelines_dir, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _RareCollections:
    """While any extract runs, Python's cyclic garbage collector runs every EXTRACT_GC_ALLOCATIONS
    allocations instead of every 700 (its default), and as before once the last one ends.

    An extract parses API pages into many small objects that live until their page has become rows;
    at the default threshold the collector traces each page's objects hundreds of times and promotes
    them to older generations that it then traces again: a quarter of Stripe's extract CPU
    (docs/performance.md, 2026-12-04). Reference counting still frees nearly everything at once; the
    collector only finds cycles, and few form here. Counted, since syncs extract side by side in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = gc.get_threshold()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(EXTRACT_GC_ALLOCATIONS, self._saved[0]), *self._saved[1:])
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    gc.set_threshold(*self._saved)


EXTRACT_GC_ALLOCATIONS = 50_000
rare_collections = _RareCollections()


@contextmanager
def warehouse_turn(pipeline: dlt.Pipeline, warehouse: Warehouse) -> Iterator[None]:
    """The dataset's load lock for a load (`Warehouse.load_lock`); on DuckDB, where that is the file's write
    lock, also one connection to the file that every dlt client of `pipeline` made in the block shares
    (dlt's external connection), closed when the lock goes.

    dlt opens and closes the file for each client it makes, and a load makes several (its start, its
    table jobs, its end), each open reading the catalog and each close after a write checkpointing
    the WAL: with the state's restore and the connector's reads, about five a small sync and a
    fifth of its CPU (docs/performance.md, 2026-12-06). dlt borrows cursors of an external
    connection (`duplicate`), as it does of its own pool's, and never closes it. Only for blocks that
    make their clients inside (a client kept beyond the block would hold the closed connection).
    """
    with warehouse.load_lock(pipeline.dataset_name):
        credentials = pipeline.destination.config_params.get("credentials") if warehouse.kind == "duckdb" else None
        if credentials is None:
            yield
            return
        with closing(warehouse.duckdb_connection()) as conn:
            credentials._external_conn = conn  # read by DuckDbCredentials.external_conn when a client is made
            try:
                yield
            finally:
                del credentials._external_conn


def run_steps(pipeline: dlt.Pipeline, source: Any, warehouse: Warehouse, stats: SyncStats) -> Steps:
    """dlt's run as its steps, holding the warehouse's write lock only while a step touches the warehouse.

    Restoring the state from the destination holds it; loading holds the dataset's load lock
    (`warehouse_turn`, `Warehouse.load_lock`: on DuckDB the same file lock, with one connection for
    the load's clients; on Postgres one load of a dataset at a time, since dlt's loads of a dataset
    share its staging tables); extracting (API calls, a bulk export's wait, the API's pacing) holds
    the write lock only for the connector's reads of rows loaded earlier (existing.py), and
    normalizing (local files) not at all. So syncs of other sources and workspaces
    extract while one loads. A package an interrupted run left is loaded first, as `pipeline.run` does.
    A kill at any point leaves what it left before: a load is one transaction per table job, and the
    state (cursors) lands in the destination with the package's last job.
    """
    with _one_run_at_a_time(pipeline):
        with warehouse.write_lock():
            pipeline.sync_destination()  # a first run finds nothing and leaves the state empty
        before = dict(pipeline.state.get("sources", {}).get(source.name, {}))
        if pipeline.has_pending_data:
            pipeline.normalize()
            with warehouse_turn(pipeline, warehouse):
                pipeline.load()
        started = time.perf_counter()
        with existing.reads_under(warehouse.write_lock), rare_collections():
            pipeline.extract(source)
        stats.seconds["extract"] = time.perf_counter() - started
        started = time.perf_counter()
        normalized = pipeline.normalize()
        stats.seconds["normalize"] = time.perf_counter() - started
        started = time.perf_counter()
        stats.rows = {table: count for table, count in normalized.row_counts.items() if not table.startswith("_dlt")}
        with warehouse_turn(pipeline, warehouse):
            load_info = pipeline.load()
        if not load_info.has_failed_jobs:  # Postgres: statistics for the models that read these tables next
            warehouse.refresh_statistics(pipeline.dataset_name, stats.rows)
        stats.seconds["load"] = time.perf_counter() - started
    load_info.raise_on_failed_jobs()
    return Steps(before, normalized, load_info)


def workspace_error(exc: BaseException | None) -> WorkspaceError | None:
    """The configuration error (bad or missing credentials) behind a failed dlt step, if that is
    what it was: dlt wraps exceptions raised in sources in PipelineStepFailed."""
    while exc is not None:
        if isinstance(exc, WorkspaceError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def deterministic_error(exc: BaseException | None, workspace_id: str) -> str | None:
    """Why retrying a failed sync cannot help, or None when it may (a network fault, an outage).

    A configuration error fails the same way every time, and so does a load the destination
    refused for good (dlt's terminal errors): the same records would be read and refused again.
    """
    cause = workspace_error(exc)
    if cause is not None:
        return str(cause)  # it names the workspace and the setting
    while exc is not None:
        if isinstance(exc, TerminalException):
            return (f"workspace {workspace_id!r}: the warehouse refused the load for good, the cursor stays where "
                    f"it was ({type(exc).__name__}: {str(exc)[:500]})")
        exc = exc.__cause__ or exc.__context__
    return None


def report_quarantine(workspace_id: str, source: str, stats: SyncStats, alert: Alert | None, log=None) -> None:
    """Tell the operator which objects this sync set aside, and why (a no-op when none were).

    `alert(title, text)` is the operator channel (`pipelines.deliver.alerts.alert_operator`, which
    serves every stage); the caller passes it in, so ingestion does not depend on a later stage.
    None logs the warning only.
    """
    if not stats.quarantined:
        return
    log = log or logging.getLogger(__name__)
    lines = []
    for table, summary in stats.quarantined.items():
        lines.append(f"{stats.quarantined_objects[table]} {table} set aside in quarantine.{source}_{table}:")
        lines += [f"- {line}" for line in summary]
    lines.append(f"Inspect: select * from quarantine.{source}_<table> where workspace_id = '{workspace_id}' "
                 "and resolved_at is null. What to do: docs/operations.md, \"Quarantine\".")
    text = "\n".join(lines)
    log.warning(f"{workspace_id}: {source} records quarantined\n{text}")
    if alert is None:
        return
    try:
        alert(f"Quarantined {source} records in workspace {workspace_id}", text)
    except Exception as exc:  # noqa: BLE001 - the records are safe in the quarantine; say the alert did not go
        log.error(f"{workspace_id}: could not alert the operator about quarantined records: {exc}")
