"""Read back what earlier syncs loaded, through the running dlt pipeline's own destination client.

Connectors need this to close the open version of a Stripe subscription when a new one arrives
(history), to mark Stripe objects deleted when a full resync no longer lists them, and to find the
open quarantine records a sync may resolve.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

CHUNK = 500


@dataclass
class _Reads:
    """The reads of one extract: the lock they hold while the warehouse is open (`reads_under`) and the
    pipeline's SQL client, made at the first read and reused by the others: making one resolves dlt's
    destination configuration, which cost more than the reads themselves on small syncs."""

    lock: Callable[[], AbstractContextManager] = nullcontext
    client: Any = None
    guard: threading.Lock = field(default_factory=threading.Lock)  # one read at a time uses the client


# The warehouse's write lock while a sync extracts (`reads_under`): these reads open the warehouse,
# which on DuckDB another process may be writing; the extract itself holds no lock.
_READS: ContextVar[_Reads | None] = ContextVar("existing_reads", default=None)


@contextmanager
def reads_under(lock: Callable[[], AbstractContextManager]) -> Iterator[None]:
    """Every read in the block holds `lock()` (`Warehouse.write_lock`) while it has the warehouse open,
    and the reads share one SQL client (each still opens and closes its own connection, under the lock)."""
    token = _READS.set(_Reads(lock))
    try:
        yield
    finally:
        _READS.reset(token)


@contextmanager
def _reading() -> Iterator[Any]:
    """The running pipeline's SQL client, connected for the block, which holds the warehouse's lock
    meanwhile. A table not created yet (the first sync) ends the block early, as if it had no rows."""
    reads = _READS.get() or _Reads()
    with reads.guard:
        if reads.client is None:
            reads.client = dlt.current.pipeline().sql_client()
        try:
            with reads.lock(), reads.client as client:
                yield client
        except DatabaseUndefinedRelation:
            pass


def _fetch(client: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    with client.execute_query(sql, *args) as cursor:
        names = [d[0] for d in cursor.description]
        return [{name: value for name, value in zip(names, row) if not name.startswith("_dlt_")}
                for row in cursor.fetchall()]


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def rows_by_key(table: str, workspace_id: str, column: str, keys: Iterable[str]) -> list[dict[str, Any]]:
    """Every row of `table` in the workspace whose `column` is one of `keys`."""
    keys = sorted(set(keys))
    found: list[dict[str, Any]] = []
    if not keys:
        return found
    with _reading() as client:
        qualified = client.make_qualified_table_name(table)
        for chunk in _chunks(keys):
            marks = ", ".join(["%s"] * len(chunk))
            found += _fetch(client, f"select * from {qualified} where workspace_id = %s and {column} in ({marks})",
                            workspace_id, *chunk)
    return found


def rows_where_each(tables: Iterable[str], workspace_id: str, condition: str) -> dict[str, list[dict[str, Any]]]:
    """Per table, the workspace's rows that meet `condition` (SQL, no parameters), all read over one
    connection; none for a table not created yet."""
    found: dict[str, list[dict[str, Any]]] = {table: [] for table in tables}
    with _reading() as client:
        for table in found:
            try:
                found[table] = _fetch(client, f"select * from {client.make_qualified_table_name(table)} "
                                              f"where workspace_id = %s and {condition}", workspace_id)
            except DatabaseUndefinedRelation:
                pass
    return found


def live_ids(table: str, workspace_id: str) -> set[str]:
    """Ids of the workspace's rows in `table` not yet marked deleted."""
    rows: list[dict[str, Any]] = []
    with _reading() as client:
        rows = _fetch(client, f"select id from {client.make_qualified_table_name(table)} "
                              "where workspace_id = %s and deleted is not true", workspace_id)
    return {row["id"] for row in rows}
