"""THE warehouse: one URL (ABOS_WAREHOUSE_URL), one class that knows what it means.

`Warehouse` is a Dagster resource; assets take it as a typed parameter, and `Settings.warehouse` is
the same class for code outside Dagster. It alone turns the URL into the dlt destination, dbt's
profile variables and database connections, and it holds the DuckDB write lock: DuckDB lets one
process write, and a reader cannot open the file while another process writes it, so every access
to a DuckDB warehouse (dlt, dbt, queries, upserts) holds the lock. Queries use `%s` placeholders on
both databases.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extras
import pyarrow as pa
import pyarrow.csv
from pydantic import Field

from pipelines import duckdb_lock
from pipelines.dbt_profile import postgres_profile_env
from pipelines.errors import SettingsError

CONNECT_TIMEOUT_SECONDS = 5
# DuckDB takes up to 80% of the machine's memory by default, and merging a million-row load
# filled 8 GiB (docs/performance.md). Capped, it spills to disk next to the database instead.
DUCKDB_MEMORY_LIMIT = "2GB"
KEPT_OPEN_CHECK_SECONDS = 0.05  # how often a kept-open connection looks for writers waiting (`kept_open`)


def parse_warehouse_url(url: str) -> str:
    """A checked warehouse URL, with the `postgres://` and `postgresql+psycopg2://` aliases normalized.

    Raises:
        SettingsError: naming ABOS_WAREHOUSE_URL (password masked) and the URLs that work.
    """
    if url.startswith("duckdb:///") and len(url) > len("duckdb:///"):
        return url
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise SettingsError(f"ABOS_WAREHOUSE_URL={redact(url)!r} names no host")
        if not parts.path.strip("/"):
            raise SettingsError(f"ABOS_WAREHOUSE_URL={redact(url)!r} names no database")
        return "postgresql://" + url.split("://", 1)[1]
    raise SettingsError(
        f"ABOS_WAREHOUSE_URL={redact(url)!r} is not supported; use duckdb:///path/to/file.duckdb "
        "or postgresql://user:password@host:5432/database"
    )


def redact(url: str) -> str:
    """`url` with any password masked, safe for logs and metadata."""
    parts = urlsplit(url)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return url


class Warehouse(dg.ConfigurableResource):
    """Where the data lives: a DuckDB file or a Postgres database, opened per call (no connection is
    held between calls, except within `kept_open`). One URL drives dlt, dbt, the insight readers and the
    delivery log."""

    url: str = Field(description="ABOS_WAREHOUSE_URL: duckdb:///path/to/file.duckdb or postgresql://...")
    duckdb_memory_limit: str = Field(default=DUCKDB_MEMORY_LIMIT, description="ABOS_DUCKDB_MEMORY_LIMIT: DuckDB's "
                                     "memory_limit for dlt's and dbt's connections (spills to disk past it)")
    duckdb_threads: int = Field(default=0, description="ABOS_DUCKDB_THREADS: DuckDB's threads (0: one per core)")

    def duckdb_config(self) -> dict[str, str | int]:
        """The DuckDB limits as DuckDB takes them (`SET name = value`), the same for dlt and dbt."""
        return {"memory_limit": self.duckdb_memory_limit, "threads": self.duckdb_threads or os.cpu_count() or 1}

    @property
    def location(self) -> str:
        """The checked, normalized URL (Dagster hands an EnvVar's value over as it is set)."""
        return parse_warehouse_url(self.url)

    @property
    def kind(self) -> str:
        """"duckdb" or "postgres"."""
        return "duckdb" if self.url.startswith("duckdb:") else "postgres"

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file (duckdb:///relative/or/absolute/path)."""
        if self.kind != "duckdb":
            raise SettingsError(f"ABOS_WAREHOUSE_URL={self.redacted} is not a DuckDB URL")
        return Path(self.url.removeprefix("duckdb:///"))

    @property
    def redacted(self) -> str:
        """The URL with any password masked, safe for logs and metadata."""
        return redact(self.location)

    # -- the tools that write it ------------------------------------------------------------------

    @property
    def load_file_format(self) -> str | None:
        """The raw tables' load file format (a dlt resource's `file_format`), the one place it is chosen.

        DuckDB: parquet, for Arrow tables and dict rows alike (loaded several times faster than SQL
        inserts). Postgres: None, dlt's choice per item: an Arrow table as csv, loaded with `COPY`
        (`dlt_destination`'s copy job keeps an empty string apart from NULL), dict rows as SQL
        inserts (`insert_values`): dlt's csv writer for dict rows writes NULL and '' alike as `""`.
        """
        return "parquet" if self.kind == "duckdb" else None

    def dlt_destination(self):
        """The dlt destination (DuckDB file or Postgres). DuckDB's writes a merge table's first load once
        (pipelines/duckdb_first_load.py); Postgres' copies csv files with NULL and '' kept apart
        (pipelines/postgres_copy.py)."""
        # the destination is needed by loads only; importing dlt costs seconds
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        if self.kind == "duckdb":
            from pipelines.duckdb_first_load import first_load_duckdb  # imports dlt too

            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            credentials = DuckDbCredentials(str(self.duckdb_path), global_config=self.duckdb_config())
            destination = first_load_duckdb(credentials=credentials)
        else:
            from pipelines.postgres_copy import exact_csv_postgres  # imports dlt too

            parts = urlsplit(self.location)
            if parts.username and parts.password is None:
                # dlt insists on a password; servers with trust or peer auth ignore an empty one.
                parts = parts._replace(netloc=parts.netloc.replace("@", ":@", 1))
            destination = exact_csv_postgres(credentials=parts.geturl())
        return _capabilities_cached(destination, self.location)

    def dbt_profile_env(self) -> dict[str, str]:
        """The variables `dbt_project/profiles.yml` reads to reach this warehouse."""
        if self.kind == "duckdb":
            config = self.duckdb_config()
            return {"ABOS_DBT_TARGET": "duckdb", "ABOS_DBT_DUCKDB_PATH": str(self.duckdb_path),
                    "ABOS_DBT_DUCKDB_MEMORY_LIMIT": str(config["memory_limit"]),
                    "ABOS_DBT_DUCKDB_THREADS": str(config["threads"])}
        return {
            "ABOS_DBT_TARGET": "postgres",
            **postgres_profile_env(self.location),  # pipelines/dbt_profile.py
            # dbt's sessions without JIT compilation and without nested-loop joins where another
            # join exists (docs/performance.md, "Postgres against DuckDB at large@0.1"). JIT:
            # Postgres compiles a query costed above jit_above_cost to machine code first, and a
            # dbt model's plan is costed far above it; at large@0.1 the compilation cost more than
            # the query (int_saas_changed_subscriptions 17.3 s with JIT, 4.7 s without). Nested
            # loops: dbt's tables have no indexes, so a nested loop compares every pair of rows, and
            # Postgres picks one whenever it underestimates a side, which it does for any filter
            # on a window's output or join on an aggregate (the `subscriptions` mart joined 17k
            # subscriptions to their latest change, estimated at a few rows: 39.7 s, 0.35 s by
            # hash). Joins with no equality (ranges) still run as nested loops. Added to the
            # caller's own PGOPTIONS, which libpq reads.
            "PGOPTIONS": " ".join(filter(None, (os.environ.get("PGOPTIONS", ""),
                                                "-c jit=off -c enable_nestloop=off"))),
        }

    @property
    def lock_path(self) -> Path:
        """The file `write_lock` locks, next to the DuckDB file."""
        return duckdb_lock.lock_path(self.duckdb_path)

    @contextmanager
    def write_lock(self, timeout: float | None = None) -> Iterator[int | None]:
        """Serialize writers of an embedded DuckDB file across processes (DuckDB allows one writer
        process; pipelines/duckdb_lock.py); Postgres handles concurrent writers itself, so this is a
        no-op there.

        Yields the lock's file descriptor (None on Postgres): a child process given it (`pass_fds`)
        holds the lock too, until both have let go of it.

        Raises:
            TimeoutError: `timeout` seconds passed without the lock (None waits for as long as it takes).
        """
        if self.kind != "duckdb":
            yield None
            return
        kept = _kept_by_thread().get(self.duckdb_path)
        if kept is not None:  # this thread's kept-open connection lets go first: the lock is not reentrant
            kept.let_go()
        with duckdb_lock.duckdb_write_lock(self.duckdb_path, timeout) as fd:
            yield fd

    @contextmanager
    def load_lock(self, dataset: str) -> Iterator[None]:
        """Held by a dlt load into `dataset` (`run_steps`): one load of a dataset at a time.

        dlt's loads of one dataset share its staging tables (`<dataset>_staging`), and each load empties
        the staging tables it loads before staging its rows, so two loads at once can merge each other's
        rows or drop them (tests/integration/test_postgres_concurrent_loads.py). On DuckDB this is the
        file's `write_lock`; on Postgres a session advisory lock named after the dataset, held on a
        connection of its own (the server frees it if this process dies). Extracting and normalizing
        stay side by side: only loads take turns.
        """
        if self.kind == "duckdb":
            with self.write_lock():
                yield
            return
        key = (f"abos.load.{dataset}",)
        with closing(psycopg2.connect(self.location)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("select pg_advisory_lock(hashtext(%s))", key)
                try:
                    yield
                finally:
                    cursor.execute("select pg_advisory_unlock(hashtext(%s))", key)

    def others_waiting(self) -> bool:
        """On DuckDB, whether another caller of `write_lock` is waiting for it now (for a holder that keeps
        the lock across several writes: it should let go). Always False on Postgres."""
        return self.kind == "duckdb" and duckdb_lock.others_waiting(self.duckdb_path)

    def ensure_reachable(self) -> None:
        """Fail within seconds, naming ABOS_WAREHOUSE_URL (password masked), when Postgres cannot be reached.

        Commands check this first: a warehouse that does not answer must not turn into minutes of retries.
        """
        if self.kind != "postgres":
            return
        try:
            psycopg2.connect(self.location, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except psycopg2.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            password = urlsplit(self.location).password
            if password:
                reason = reason.replace(password, "***")
            raise SettingsError(f"ABOS_WAREHOUSE_URL={self.redacted}: cannot connect: {reason}") from None

    # -- reads and writes -------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
        """The rows of `sql` as a frame; decimals come back as floats on both databases."""
        if self.kind == "duckdb":
            with self._opened() as conn:
                return conn.execute(sql.replace("%s", "?"), list(params)).df()
        with self.write_lock(), self._postgres() as conn, conn.cursor() as cursor:
            return _read_frame(cursor, sql, params)

    @contextmanager
    def reads(self) -> Iterator[Reads]:
        """Several queries on one connection: `query` and `table_exists` as on the warehouse, with
        the same results, but the database opened once for all of them (opening a DuckDB file reads
        its catalog: ~0.04 s of CPU and a quarter of a second under load, each time). Holds the
        DuckDB lock for the block, so keep slow work out of it, and the warehouse's own calls (the
        lock is not reentrant)."""
        if self.kind == "duckdb":
            with self._opened() as conn:
                yield Reads(conn, "duckdb")
            return
        with self.write_lock(), self._postgres() as conn, conn.cursor() as cursor:
            yield Reads(cursor, "postgres")

    @contextmanager
    def kept_open(self) -> Iterator[None]:
        """Within the block, this thread's calls on a DuckDB warehouse (`query`, `reads`, `upsert`,
        `transaction`, `rows`) share one connection, holding the write lock from the first call on.

        Each open of the file reads its catalog (0.02-0.04 s of CPU at large@0.1, more under load) and
        each close after a write checkpoints the WAL: the insights step, which reads and writes a
        few tables per asset, paid that a dozen times per workspace. The kept connection lets go (it
        closes and releases the lock) whenever another writer waits for the lock (`others_waiting`,
        checked every KEPT_OPEN_CHECK_SECONDS between calls), when this thread takes `write_lock`
        itself, and when a call fails (closing rolls back what it began); the next call opens it
        again. A no-op on Postgres and inside another such block.
        """
        kept = _kept_by_thread()
        if self.kind != "duckdb" or self.duckdb_path in kept:
            yield
            return
        kept[self.duckdb_path] = mine = _Kept(self)
        try:
            yield
        finally:
            del kept[self.duckdb_path]
            mine.close()

    @contextmanager
    def _opened(self, lock_timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection for one call, under the write lock: this thread's kept one (`kept_open`),
        else a new one, closed after the call."""
        kept = _kept_by_thread().get(self.duckdb_path)
        if kept is None:
            with self.write_lock(timeout=lock_timeout), closing(self._duckdb()) as conn:
                yield conn
            return
        with kept.call(lock_timeout) as conn:
            yield conn

    @contextmanager
    def reader(self, *, timeout: float = 5.0) -> Iterator[Callable[[str, Sequence[object]], pd.DataFrame]]:
        """`read(sql, params)` → rows, on one connection that cannot write, each statement stopped
        after `timeout` seconds (questions in plain language, docs/ask.md). A failed statement
        does not stop the next one.

        Raises:
            TimeoutError: (from `read`) a statement ran longer than `timeout`.
        """
        with self.write_lock():
            if self.kind == "duckdb":
                with closing(duckdb.connect(str(self.duckdb_path), read_only=True)) as conn:
                    yield lambda sql, params=(): _floats(_interrupted_after(timeout, conn, sql, params))
                return
            options = f"-c statement_timeout={int(timeout * 1000)} -c default_transaction_read_only=on"
            with closing(psycopg2.connect(self.location, options=options)) as conn:
                conn.autocommit = True  # each read its own read-only transaction

                def read(sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
                    with conn.cursor() as cursor:
                        try:
                            cursor.execute(sql, tuple(params) or None)
                        except psycopg2.errors.QueryCanceled:
                            raise TimeoutError(f"a read took longer than {timeout:g}s") from None
                        return _fetched_frame(cursor)

                yield read

    def table_exists(self, table: str) -> bool:
        """Whether `schema.name` exists (tables the pipeline creates on first write, or dbt builds)."""
        schema, _, name = table.partition(".")
        found = self.query("select count(*) as n from information_schema.tables "
                           "where table_schema = %s and table_name = %s", [schema, name])
        return bool(int(found["n"].iloc[0]))

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        """The rows of `sql` as dicts (column names lower-case), values exactly as stored (decimals stay
        Decimal): for checks that compare money to the cent."""
        if self.kind == "duckdb":
            with self._opened() as conn:
                cursor = conn.execute(sql.replace("%s", "?"), list(params))
                names = [column[0].lower() for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        with self.write_lock(), self._postgres() as conn, conn.cursor() as cursor:
            cursor.execute(sql, tuple(params) or None)
            names = [column.name.lower() for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def upsert(
        self,
        table: str,
        frame: pd.DataFrame,
        key: Sequence[str],
        *,
        replace: Mapping[str, object] | None = None,
    ) -> int:
        """Write `frame` into `schema.table`, replacing rows with the same `key`; idempotent.

        The schema and table are created from the frame's columns when missing, and columns the
        table lacks are added. With `replace`,
        e.g. {"workspace_id": "demo-saas"}, the frame is the complete new set of rows matching those
        column values: matching rows it does not hold are deleted too, so a rerun that finds fewer
        rows leaves no stale ones. Everything happens in one transaction.

        Returns:
            The number of rows written.
        """
        schema = table.rpartition(".")[0]
        if not schema:
            raise ValueError(f"table {table!r} must be schema-qualified, e.g. insights.anomalies")
        missing = [column for column in [*key, *(replace or {})] if column not in frame.columns]
        if missing:
            raise ValueError(f"rows for {table} lack key columns {missing}")
        if frame.duplicated(list(key)).any():
            raise ValueError(f"rows for {table} repeat a key {list(key)}")
        types = {column: _sql_type(frame[column]) for column in frame.columns}  # once: a date column's values are read
        columns = ", ".join(f'"{column}" {sql_type}' for column, sql_type in types.items())
        statements = [f'create schema if not exists "{schema}"', f'create table if not exists {table} ({columns})']
        deletes = _delete_matching(table, list(key), replace or {})
        if self.kind == "duckdb":
            with self._opened() as conn:
                conn.execute("begin")
                for statement in statements:
                    conn.execute(statement)
                for statement in _added_columns(table, types, conn.execute(f"select * from {table} limit 0").description):
                    conn.execute(statement)
                conn.register("incoming", frame)
                for deleted, values in deletes:
                    conn.execute(deleted.replace("%s", "?"), values)
                conn.execute(f"insert into {table} by name select * from incoming")
                conn.execute("commit")
                conn.unregister("incoming")
        else:
            with self.write_lock(), self._postgres() as conn, conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute(f"select * from {table} limit 0")
                for statement in _added_columns(table, types, cursor.description):
                    cursor.execute(statement)
                names = ", ".join(f'"{column}"' for column in frame.columns)
                cursor.execute(f"create temporary table incoming on commit drop as "
                               f"select {names} from {table} limit 0")
                cursor.execute("select * from incoming limit 0")
                rows = _copied_rows(frame, types, [column.type_code for column in cursor.description],
                                    cursor.connection.encoding)
                if rows is not None:
                    cursor.copy_expert(f"copy incoming ({names}) from stdin with (format csv)", io.BytesIO(rows))
                else:
                    psycopg2.extras.execute_values(
                        cursor, f"insert into incoming ({names}) values %s", _plain_rows(frame), page_size=1000)
                for deleted, values in deletes:
                    cursor.execute(deleted, values)
                cursor.execute(f"insert into {table} ({names}) select {names} from incoming")
        return len(frame)

    @contextmanager
    def transaction(self, lock_timeout: float | None = None) -> Iterator["Statements"]:
        """Statements run in one transaction (committed when the block succeeds), `%s` placeholders
        on both databases; for writes `upsert` does not cover, e.g. insert-or-ignore.

        Raises:
            TimeoutError: on DuckDB, another writer held the file for `lock_timeout` seconds.
        """
        if self.kind == "duckdb":
            with self._opened(lock_timeout) as conn:
                conn.execute("begin")
                yield Statements(conn, "?")
                conn.execute("commit")
        else:
            with self.write_lock(timeout=lock_timeout), self._postgres() as conn, conn.cursor() as cursor:
                yield Statements(cursor, "%s")

    def refresh_statistics(self, schema: str, loaded: Mapping[str, int]) -> list[str]:
        """ANALYZE the tables of `schema` a load changed a lot (`loaded`: rows per table), on Postgres.

        Postgres plans with a table's statistics, which only ANALYZE (or autovacuum, in its own
        time) gathers; dbt runs right after a sync, and a table never analyzed is estimated at a
        handful of rows, so joins of its composite keys became nested loops (a 50 s model instead of
        1 s at a fiftieth of the large sandbox; docs/performance.md). Like autovacuum's rule, a table
        is analyzed when it never was or the load wrote more than a tenth of its rows. DuckDB keeps
        its statistics as it writes: a no-op there. Returns the tables analyzed.
        """
        if self.kind != "postgres" or not loaded:
            return []
        with self._postgres() as conn, conn.cursor() as cursor:
            cursor.execute("select c.relname, c.reltuples from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                           "where n.nspname = %s and c.relkind = 'r' and c.relname = any(%s)", (schema, list(loaded)))
            stale = sorted(name for name, estimate in cursor.fetchall()
                           if estimate < 0 or loaded[name] > 0.1 * estimate)
            for name in stale:
                cursor.execute(f"analyze {_quoted(schema)}.{_quoted(name)}")
        return stale

    def postgres_connection(self) -> psycopg2.extensions.connection:
        """A new psycopg2 connection to a Postgres warehouse, for work that manages its own
        transactions (analyst roles, VACUUM); the caller closes it."""
        if self.kind != "postgres":
            raise SettingsError(f"ABOS_WAREHOUSE_URL={self.redacted} is not a Postgres URL")
        return psycopg2.connect(self.location)

    def duckdb_connection(self) -> duckdb.DuckDBPyConnection:
        """A new connection to a DuckDB warehouse, for a caller that holds `write_lock` while it keeps the
        connection open (the webhook gateway between batches); the caller closes it."""
        if self.kind != "duckdb":
            raise SettingsError(f"ABOS_WAREHOUSE_URL={self.redacted} is not a DuckDB URL")
        return self._duckdb()

    def _duckdb(self) -> duckdb.DuckDBPyConnection:
        path = self.duckdb_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path))

    @contextmanager
    def _postgres(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection that commits when the block succeeds, rolls back when it fails, then closes."""
        with closing(psycopg2.connect(self.location)) as conn, conn:
            yield conn


class _Kept:
    """One thread's kept-open DuckDB connection (`Warehouse.kept_open`) and the write lock it holds.

    A watcher thread lets go of both whenever another writer waits for the lock and no call is using
    the connection, so a writer with a lock timeout (the webhook gateway) waits for one call at most,
    as it did when every call opened its own connection."""

    def __init__(self, warehouse: Warehouse):
        self._warehouse = warehouse
        self._held: ExitStack | None = None
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._using = threading.RLock()  # held by the owning thread during a call
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._let_waiters_in, name="warehouse-kept-open", daemon=True)
        self._watcher.start()

    @contextmanager
    def call(self, lock_timeout: float | None) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection for one call, opened (taking the lock) when it is not; a failed call lets go
        (closing rolls back what it began)."""
        with self._using:
            if self._conn is None:
                held = ExitStack()
                try:
                    held.enter_context(self._warehouse.write_lock(timeout=lock_timeout))
                    self._conn = held.enter_context(closing(self._warehouse._duckdb()))
                except BaseException:
                    held.close()
                    raise
                self._held = held
            try:
                yield self._conn
            except BaseException:
                self.let_go()
                raise

    def let_go(self) -> None:
        """Close the connection, then release the lock (nothing when it is not open)."""
        with self._using:
            held, self._held, self._conn = self._held, None, None
            if held is not None:
                held.close()

    def close(self) -> None:
        self._done.set()
        self._watcher.join()
        self.let_go()

    def _let_waiters_in(self) -> None:
        while not self._done.wait(KEPT_OPEN_CHECK_SECONDS):
            if self._conn is None or not self._using.acquire(blocking=False):
                continue
            try:
                if self._conn is not None and self._warehouse.others_waiting():
                    self.let_go()
            finally:
                self._using.release()


_threads = threading.local()


def _kept_by_thread() -> dict[Path, _Kept]:
    """This thread's kept-open connections by DuckDB file."""
    if not hasattr(_threads, "kept"):
        _threads.kept = {}
    return _threads.kept


class Reads:
    """Queries on one open connection (`Warehouse.reads`), with `Warehouse.query`'s results."""

    def __init__(self, target: Any, kind: str):
        self._target = target
        self.kind = kind

    def query(self, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
        """The rows of `sql` as a frame, as `Warehouse.query` returns them."""
        if self.kind == "duckdb":
            return self._target.execute(sql.replace("%s", "?"), list(params)).df()
        return _read_frame(self._target, sql, params)

    def table_exists(self, table: str) -> bool:
        """Whether `schema.name` exists, as `Warehouse.table_exists` says."""
        schema, _, name = table.partition(".")
        found = self.query("select count(*) as n from information_schema.tables "
                           "where table_schema = %s and table_name = %s", [schema, name])
        return bool(int(found["n"].iloc[0]))


class Statements:
    """SQL with `%s` placeholders, run on a DuckDB connection or a psycopg2 cursor."""

    def __init__(self, target: Any, placeholder: str):
        self._target = target
        self._placeholder = placeholder
        self.kind = "duckdb" if placeholder == "?" else "postgres"

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Run one statement; its rows when it returns any."""
        self._target.execute(sql.replace("%s", self._placeholder), list(params) if self.kind == "duckdb"
                             else (tuple(params) or None))
        return self._target.fetchall() if self._target.description else []

    @property
    def columns(self) -> list[str]:
        """The column names of the last statement's rows."""
        return [column[0] for column in self._target.description or []]

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self._target.executemany(sql.replace("%s", self._placeholder), [list(row) for row in rows])


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _floats(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with decimal columns as floats, alike on both databases."""
    for name in frame.columns:
        if frame[name].dtype == object and frame[name].map(lambda value: isinstance(value, Decimal)).any():
            frame[name] = frame[name].astype("float64")
    return frame


# Postgres's type oids (`pg_type.oid`) of the column types read or written here by COPY.
BOOL_OID, INT8_OID, INT2_OID, INT4_OID, TEXT_OID, FLOAT8_OID = 16, 20, 21, 23, 25, 701
VARCHAR_OID, DATE_OID, TIMESTAMP_OID, TIMESTAMPTZ_OID = 1043, 1082, 1114, 1184
NUMERIC_OID = 1700  # Postgres's `numeric`, the one type psycopg2 returns as Decimal


def _fetched_frame(cursor: psycopg2.extensions.cursor) -> pd.DataFrame:
    """The rows of a psycopg2 cursor's statement as a frame, decimals as floats as `_floats` makes them.

    `_floats` asks every value of every object column whether it is a Decimal (a date column's every
    value, since none is): the cursor's description says which columns are `numeric`, and only those
    hold Decimals (or NULLs: a column of NULLs only stays as it is, as `_floats` leaves it)."""
    description = cursor.description
    frame = pd.DataFrame(cursor.fetchall(), columns=[column.name for column in description])
    for position, column in enumerate(description):
        if column.type_code == NUMERIC_OID and frame.iloc[:, position].notna().any():
            frame.isetitem(position, frame.iloc[:, position].astype("float64"))
    return frame


# The column types a read takes through COPY, as Arrow's CSV reader parses them; `_copied_frame` turns
# them into the dtypes `_fetched_frame` gives psycopg2's values of these types.
_COPIED_TYPES = {BOOL_OID: pa.bool_(), INT8_OID: pa.int64(), INT2_OID: pa.int64(), INT4_OID: pa.int64(),
                 FLOAT8_OID: pa.float64(), NUMERIC_OID: pa.float64(), TEXT_OID: pa.string(),
                 VARCHAR_OID: pa.string(), DATE_OID: pa.date32()}


def _read_frame(cursor: psycopg2.extensions.cursor, sql: str, params: Sequence[object]) -> pd.DataFrame:
    """The rows of the select `sql` as a frame, the same as `_fetched_frame` makes them: through
    `COPY (…) to stdout` in CSV read by Arrow when every column is of a type in `_COPIED_TYPES`.

    psycopg2's `fetchall` makes a Python object of every value and pandas looks at each of them
    again to find the column's dtype (the drivers' slices at scale 1: millions of rows; docs/performance.md,
    "The insights stage on Postgres"); Arrow parses the CSV column by column in C++. A first
    `limit 0` of the select gives the column types (planned, not run). Any other statement (or a select
    with `into`, a `;` or a `--` comment, which the subquery would break), an encoding other than UTF-8, a column of another type (timestamps among them) or text Arrow does
    not parse as its type (e.g. an infinite date) reads through `fetchall`.
    """
    values = tuple(params) or None
    words = sql.split(maxsplit=1)
    # a select that can be wrapped as a subquery: no `into`, no statement end, no comment running to its end
    wrappable = words and words[0].lower() == "select" and not any(mark in sql.lower() for mark in (" into ", ";", "--"))
    if wrappable and cursor.connection.encoding == "UTF8":
        cursor.execute(f"select * from ({sql}) as typed limit 0", values)
        description = cursor.description
        types = [_COPIED_TYPES.get(column.type_code) for column in description]
        if types and all(types):
            rows = io.BytesIO()
            cursor.copy_expert(cursor.mogrify(f"copy ({sql}) to stdout with (format csv)", values), rows)
            try:
                return _copied_frame(rows.getvalue(), [column.name for column in description], types)
            except pa.ArrowInvalid:
                pass
    cursor.execute(sql, values)
    return _fetched_frame(cursor)


def _copied_frame(rows: bytes, names: list[str], types: list[pa.DataType]) -> pd.DataFrame:
    """COPY's CSV `rows` of columns `names` of Arrow `types` as `_fetched_frame` makes psycopg2's rows:
    a column of NULLs only as objects (None), integers with a NULL as floats, booleans with one as
    objects, dates as `datetime.date` objects, text as pandas' inferred string dtype, `numeric` as floats.
    COPY writes NULL as an unquoted empty field and an empty text quoted."""
    if not rows:
        return pd.DataFrame([], columns=names)
    positions = [f"c{position}" for position in range(len(names))]
    table = pyarrow.csv.read_csv(
        io.BytesIO(rows), read_options=pyarrow.csv.ReadOptions(column_names=positions),
        parse_options=pyarrow.csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
        convert_options=pyarrow.csv.ConvertOptions(
            column_types=dict(zip(positions, types)), true_values=["t"], false_values=["f"], null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    columns = [pd.Series([None] * len(column), dtype=object) if column.null_count == len(column)
               else column.to_pandas(date_as_object=True) for column in table.columns]
    frame = pd.concat(columns, axis=1, ignore_index=True)
    frame.columns = names
    return frame


def _interrupted_after(timeout: float, conn: duckdb.DuckDBPyConnection, sql: str,
                       params: Sequence[object]) -> pd.DataFrame:
    """One DuckDB statement, interrupted (TimeoutError) when it runs longer than `timeout` seconds."""
    timer = threading.Timer(timeout, conn.interrupt)
    timer.start()
    try:
        return conn.execute(sql.replace("%s", "?"), list(params)).df()
    except duckdb.InterruptException:
        raise TimeoutError(f"a read took longer than {timeout:g}s") from None
    finally:
        timer.cancel()


def _added_columns(table: str, types: Mapping[str, str], description: Sequence[Sequence[Any]]) -> list[str]:
    """The statements that give `table` the columns of `types` it lacks: a table written by an older
    version gains them (its old rows get NULLs). Only the missing ones: one `alter table` per column of
    every write cost the insights step ~5 ms a write on DuckDB (about thirty statements a workspace),
    and on Postgres each takes the table's exclusive lock even when the column exists.
    `description` is the cursor description of a read of the table (its columns' names first)."""
    present = {str(column[0]) for column in description}
    return [f'alter table {table} add column if not exists "{column}" {sql_type}'
            for column, sql_type in types.items() if column not in present]


def _delete_matching(table: str, key: list[str], replace: Mapping[str, object]) -> list[tuple[str, list[object]]]:
    """The deletes of rows the incoming rows replace: (with `replace`) those of the same scope, then
    those with the same key. Two statements, not one `or`: Postgres plans `key in (select …) or scope`
    as a subquery scanned again for every row of the table once the keys outgrow `work_mem` (the
    customer values at scale 1: 750,000 rows × 750,000 keys, over 20 minutes), where the `in` alone
    is a hash join (docs/performance.md, "Postgres at scale 1")."""
    keys = ", ".join(f'"{column}"' for column in key)
    statements: list[tuple[str, list[object]]] = []
    if replace:
        scope = " and ".join(f'"{column}" = %s' for column in replace)
        statements.append((f"delete from {table} where {scope}", list(replace.values())))
    statements.append((f"delete from {table} where ({keys}) in (select {keys} from incoming)", []))
    return statements


def _sql_type(column: pd.Series) -> str:
    """A column type both databases understand, from the frame's dtype (or its values)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_date(dtype.pyarrow_dtype):  # days without Python dates
        return "date"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp with time zone" if getattr(dtype, "tz", None) else "timestamp"
    present = column.dropna()
    if len(present) and all(type(value).__name__ == "date" for value in present):
        return "date"
    return "text"


# Postgres's type oids of the column types `_sql_type` names.
_TYPE_OIDS = {"boolean": BOOL_OID, "bigint": INT8_OID, "double precision": FLOAT8_OID, "date": DATE_OID,
              "timestamp": TIMESTAMP_OID, "timestamp with time zone": TIMESTAMPTZ_OID, "text": TEXT_OID}


# The Arrow types whose CSV text Postgres reads as the value psycopg2 writes, by column type.
_AS_WRITTEN = {"text": lambda kind: pa.types.is_string(kind) or pa.types.is_large_string(kind),
               "bigint": pa.types.is_integer, "boolean": pa.types.is_boolean, "date": pa.types.is_date}


def _copied_rows(frame: pd.DataFrame, types: Mapping[str, str], oids: Sequence[int], encoding: str) -> bytes | None:
    """`frame` as CSV for Postgres's `COPY … from stdin with (format csv)` into the upsert's `incoming`
    table (whose column types have `oids`), when that writes exactly the values `execute_values` of
    `_plain_rows` writes; None otherwise (the caller inserts them as before).

    Arrow writes the CSV, column by column in C++: execute_values built a Python tuple per row and
    psycopg2 quoted each value into an `insert`'s text, and the server parsed that statement (the
    customer values at scale 1: 750,000 rows of 11 columns; docs/performance.md, "The insights stage
    on Postgres"). Only the plain cases: each column of the type `_sql_type` gave it, in a column of
    that type (or all NULL), on a UTF-8 connection. The values are the same: NULL for None, NaN and
    NaT (Arrow reads NaN as null from pandas; COPY reads an unquoted empty field as NULL); text
    always quoted by Arrow, quotes doubled, so an empty string stays one and backslashes, commas and
    line breaks stay text; floats in a shortest form that reads back to the same double (as Python's
    `repr`, which psycopg2 writes), `inf` as infinity; timestamps to the microsecond (psycopg2 drops
    nanoseconds: a column with any is left to it), with a time zone written in UTC.
    """
    if encoding.upper().replace("-", "") != "UTF8" or len(oids) != len(frame.columns):
        return None
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):  # e.g. an object column of mixed types
        return None
    columns = []
    for name, oid, array in zip(frame.columns, oids, table.columns):
        if array.null_count == len(array):
            columns.append(pa.nulls(len(array), pa.string()))
            continue
        sql_type = types[name]
        if _TYPE_OIDS.get(sql_type) != oid:
            return None
        kind = array.type
        if sql_type == "double precision" and pa.types.is_floating(kind):
            columns.append(array.cast(pa.float64()))  # a float32's exact double, as `.item()` gives it
        elif sql_type.startswith("timestamp") and pa.types.is_timestamp(kind) and (
                (kind.tz is not None) == (sql_type == "timestamp with time zone")):
            if kind.unit == "ns":
                if (np.asarray(array.cast(pa.int64()).fill_null(0)) % 1000).any():
                    return None
                array = array.cast(pa.timestamp("us", kind.tz))
            columns.append(array)
        elif _AS_WRITTEN.get(sql_type, lambda _: False)(kind):
            columns.append(array)
        else:
            return None
    sink = pa.BufferOutputStream()
    pyarrow.csv.write_csv(pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))]), sink,
                          pyarrow.csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def _plain_rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows of Python values psycopg2 can adapt: NaN and NaT as NULL, numpy scalars unwrapped."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [tuple(value.item() if isinstance(value, np.generic) else value for value in row)
            for row in plain.itertuples(index=False)]


# Capabilities of a dlt destination without a resolved configuration, per (destination, warehouse,
# naming convention, explicit parameters), for this process.
_CAPABILITIES: dict[tuple, Any] = {}
_CAPABILITIES_LOCK = threading.Lock()
# Parameters that name a pipeline's files or the warehouse (`location` stands for the credentials,
# whose object is new per destination and marked resolved by dlt in place), not what the destination
# can do: DuckDB's and Postgres's capabilities read no configuration (dlt's `adjust_capabilities`
# looks at the naming convention only), so every workspace's pipeline shares them.
_NOT_CAPABILITIES = {"credentials", "pipeline_name", "pipeline_working_dir", "local_dir"}


def _capabilities_cached(destination, location: str):
    """`destination`, whose `capabilities()` without a configuration is worked out once per process.

    dlt asks for them about eight times a sync (`Pipeline._get_destination_capabilities`, for the
    extract, normalize and load steps), and each time resolves the destination's configuration from
    its providers (0.1-0.2 s each; docs/performance.md, 2026-12-04): the same answer while the
    warehouse URL, the naming convention and the destination's parameters are the same. Each caller gets
    its own copy (dlt sets the file formats on the one it gets). With a configuration (a client
    being made) dlt's own path runs.
    """
    destination.capabilities = functools.partial(_cached_capabilities, destination, location)  # picklable
    return destination


def _cached_capabilities(destination, location: str, config=None, naming=None):
    original = type(destination).capabilities
    if config is not None:
        return original(destination, config, naming)
    key = (type(destination).__qualname__, location,
           None if naming is None else (type(naming).__module__, type(naming).__qualname__, naming.max_length),
           tuple(sorted((name, repr(value)) for name, value in destination.config_params.items()
                        if name not in _NOT_CAPABILITIES)),
           tuple(sorted((name, repr(value)) for name, value in destination.caps_params.items())))
    with _CAPABILITIES_LOCK:
        found = _CAPABILITIES.get(key)
    if found is None:
        found = original(destination, None, naming)
        with _CAPABILITIES_LOCK:
            _CAPABILITIES[key] = found
    return copy.copy(found)
