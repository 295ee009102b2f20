"""Dagster's SQLite storage with the event log's connections kept per process (deploy/dagster.yaml).

`deploy/dagster.yaml` names `Instance` as the instance class: Dagster's instance, whose default
storage (the one used when `dagster.yaml` has no `storage` key) is `SqliteStorage` in the instance's
own directory instead of `DagsterSqliteStorage`; nothing else differs.

Dagster's `SqliteEventLogStorage` builds an SQLAlchemy engine for every event it stores or reads
(`NullPool`, disposed after the transaction): a new SQLite connection to the run's shard and, for an
asset event, another to the index shard, each reading the database's schema again. A run over many
workspaces stores one planned event and one materialization per asset and workspace, so that is most
of a tiny workspace's Dagster cost (docs/performance.md, "Many tenants: Dagster's event log with kept
connections"). This storage is Dagster's own in every other respect (same files, tables, transactions
and busy timeout); only the event log keeps, per process, one engine with one pooled connection for
the index shard and for each of the few run shards used last.

Why that is safe with the webserver, the daemon and run workers writing at once: every use of a
connection is still one transaction (`BEGIN` ... `COMMIT`, or the pool's rollback on return), and
Dagster's databases are in WAL mode, so a connection kept idle between transactions holds no lock
and sees every other process's commits at its next transaction; writers wait on SQLite's lock with
the same busy timeout as before. Within a process Dagster already serializes the storage's
connections (`_db_lock`). Engines are per process: one inherited across a fork is dropped without
closing its connections (the parent's), and the child opens its own.

It overrides a private method of Dagster's (`SqliteEventLogStorage._connect`, and the attributes it
uses), which is why `pyproject.toml` pins `dagster<1.14`: before raising that pin, run
`tests/integration/test_dagster_storage.py`, whose connection counts fail if Dagster stops calling
`_connect` (the storage would then quietly be Dagster's own again) and whose concurrent writers fail
if its locking changed.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef, _event_logs_directory
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

KEPT_RUN_SHARDS = 4  # run shards whose connection a process keeps (the index shard's is always kept)


class KeptConnectionsEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine and one pooled connection per shard, kept per process
    for the index shard and the `KEPT_RUN_SHARDS` run shards used last (an older one is closed)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Any) -> KeptConnectionsEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The process's engine for `shard` (called under `_db_lock`)."""
        if os.getpid() != self._engines_pid:
            # Forked: the inherited connections are the parent's; forget them without closing.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            # One connection kept; the overflow is for Dagster's schema check on a shard's first use,
            # which opens its own connections while none is checked out (they close on return).
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=QueuePool, pool_size=1,
                                   max_overflow=2, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        self._engines[shard] = engine  # most recently used last
        run_shards = [name for name in self._engines if name != "index"]
        for name in run_shards[:-KEPT_RUN_SHARDS]:
            self._engines.pop(name).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As Dagster's `_connect`, with the process's engine instead of a new one per call.
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_engines(self) -> None:
        with self._db_lock:
            if os.getpid() == self._engines_pid:
                for engine in self._engines.values():
                    engine.dispose()
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()

    def wipe(self) -> None:
        self._close_engines()  # no connection kept to a shard file it deletes
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (`DagsterSqliteStorage`, same `base_dir`, same files) with
    the event log's connections kept per process (`KeptConnectionsEventLogStorage`)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = KeptConnectionsEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Any) -> SqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class Instance(dg.DagsterInstance):
    """Dagster's instance; its default storage, for the directory the instance is loaded from (as
    Dagster's own default: `DAGSTER_HOME`, or the directory given to `DagsterInstance.from_config`),
    is `SqliteStorage`. A `storage` key in `dagster.yaml` (Postgres) still takes precedence."""

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def config_defaults(cls, base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        return {**InstanceRef.config_defaults(base_dir), "storage": ConfigurableClassData(
            __name__, SqliteStorage.__name__, yaml.dump({"base_dir": base_dir}, default_flow_style=False))}
