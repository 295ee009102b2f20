"""Read back what earlier syncs loaded, through the running dlt pipeline's own destination client.

Connectors need this to close the open version of a Stripe subscription when a new one arrives
(history), to mark Stripe objects deleted when a full resync no longer lists them, and to find the
open quarantine records a sync may resolve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

CHUNK = 500
# The warehouse's write lock while a sync extracts (`reads_under`): these reads open the warehouse,
# which on DuckDB another process may be writing; the extract itself holds no lock.
_READ_LOCK: ContextVar[Callable[[], AbstractContextManager] | None] = ContextVar("existing_read_lock", default=None)


@contextmanager
def reads_under(lock: Callable[[], AbstractContextManager]) -> Iterator[None]:
    """Every read in the block holds `lock()` (`Warehouse.write_lock`) while it has the warehouse open."""
    token = _READ_LOCK.set(lock)
    try:
        yield
    finally:
        _READ_LOCK.reset(token)


def _locked() -> AbstractContextManager:
    lock = _READ_LOCK.get()
    return lock() if lock is not None else nullcontext()


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _query(sql: str, *args: Any) -> list[dict[str, Any]]:
    pipeline = dlt.current.pipeline()
    try:
        with _locked(), pipeline.sql_client() as client, client.execute_query(sql, *args) as cursor:
            names = [d[0] for d in cursor.description]
            return [
                {name: value for name, value in zip(names, row) if not name.startswith("_dlt_")}
                for row in cursor.fetchall()
            ]
    except DatabaseUndefinedRelation:  # the first sync: nothing loaded yet
        return []


def _table(name: str) -> str:
    with _locked(), dlt.current.pipeline().sql_client() as client:
        return client.make_qualified_table_name(name)


def rows_by_key(table: str, workspace_id: str, column: str, keys: Iterable[str]) -> list[dict[str, Any]]:
    """Every row of `table` in the workspace whose `column` is one of `keys`."""
    keys = sorted(set(keys))
    if not keys:
        return []
    found: list[dict[str, Any]] = []
    qualified = _table(table)
    for chunk in _chunks(keys):
        marks = ", ".join(["%s"] * len(chunk))
        found += _query(f"select * from {qualified} where workspace_id = %s and {column} in ({marks})",
                        workspace_id, *chunk)
    return found


def rows_where(table: str, workspace_id: str, condition: str) -> list[dict[str, Any]]:
    """Every row of `table` in the workspace that meets `condition` (SQL, no parameters)."""
    return _query(f"select * from {_table(table)} where workspace_id = %s and {condition}", workspace_id)


def live_ids(table: str, workspace_id: str) -> set[str]:
    """Ids of the workspace's rows in `table` not yet marked deleted."""
    rows = _query(f"select id from {_table(table)} where workspace_id = %s and deleted is not true", workspace_id)
    return {row["id"] for row in rows}
