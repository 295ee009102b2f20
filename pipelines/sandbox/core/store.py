"""The sandbox's object store: one SQLite file that the simulator writes and the fake APIs read.

Everything the fake Shopify and Stripe servers serve lives here, as the exact JSON body the real API
would return (Shopify: the GraphQL node with nested connections as lists; Stripe: the object in the
pinned API version, with embedded lists complete). Keeping it on disk lets the `large` sandbox
stream millions of objects in bounded memory and lets several server threads read while the clock
advances.

All timestamps are integer Unix seconds, UTC.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import json_io

SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists accounts (
    workspace text not null, source text not null, config text not null,
    primary key (workspace, source)
);
create table if not exists objects (
    workspace text not null, source text not null, kind text not null, id text not null,
    created integer not null, updated integer not null, deleted integer not null default 0,
    body text not null,
    primary key (workspace, source, kind, id)
);
create index if not exists objects_by_created on objects (workspace, source, kind, created, id);
create index if not exists objects_by_updated on objects (workspace, source, kind, updated, id);
create table if not exists plans (
    workspace text not null, source text not null, kind text not null, id text not null,
    next_due integer, plan text not null,
    primary key (workspace, source, kind, id)
);
create index if not exists plans_by_due on plans (next_due);
"""


@dataclass(frozen=True)
class StoredObject:
    """One API object as stored: its keys, timestamps and JSON body."""

    workspace: str
    source: str
    kind: str
    id: str
    created: int
    updated: int
    deleted: bool
    body: dict[str, Any]


def _row_to_object(row: sqlite3.Row) -> StoredObject:
    return StoredObject(
        workspace=row["workspace"],
        source=row["source"],
        kind=row["kind"],
        id=row["id"],
        created=row["created"],
        updated=row["updated"],
        deleted=bool(row["deleted"]),
        body=json_io.loads(row["body"]),
    )


def _tightest(bounds: dict[str, int], cursor: int, descending: bool) -> tuple[dict[str, int], bool]:
    """A page's range on its order column without the conditions the others imply: `(bounds, keyset)`,
    where `keyset` says whether the cursor's `(column, id)` comparison is still needed.

    Same rows either way; SQLite takes one of several bounds on a column as the index range, and when
    it took a window's end rather than the cursor, every page scanned the window from that end down to
    the cursor (each page of a list cost more the deeper it was: quadratic in the window's size).
    """
    # The bounds on the cursor's side: below it when walking down (newest first), above it when walking up.
    side = ("lt", "lte") if descending else ("gt", "gte")
    found = {op: int(value) for op, value in bounds.items() if op in side and value is not None}
    if descending:
        implies_cursor = any(value <= cursor if op == "lt" else value < cursor for op, value in found.items())
    else:
        implies_cursor = any(value >= cursor if op == "gt" else value > cursor for op, value in found.items())
    if implies_cursor:  # the window ends before the cursor: the cursor's comparison holds for every row
        return bounds, False
    # The cursor lies within the window: it is the tighter bound, and the window's end on its side is implied.
    return {op: value for op, value in bounds.items() if op not in side}, True


class SandboxStore:
    """Thread-safe access to the sandbox's SQLite file (one connection per thread, WAL mode)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.conn.executescript(SCHEMA)  # executescript commits on its own: no transaction() around it

    # -- connections ---------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("pragma journal_mode=wal")
            conn.execute("pragma synchronous=normal")
            conn.execute("pragma cache_size=-65536")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run writes atomically; readers in other threads keep seeing the previous state."""
        with self._write_lock:
            conn = self.conn
            if conn.in_transaction:  # nested: the outer transaction commits
                yield conn
                return
            conn.execute("begin immediate")
            try:
                yield conn
            except BaseException:
                conn.execute("rollback")
                raise
            conn.execute("commit")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- meta and clock ------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("select value from meta where key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as conn:
            conn.execute(
                "insert into meta (key, value) values (?, ?)"
                " on conflict (key) do update set value = excluded.value",
                (key, json.dumps(value)),
            )

    @property
    def clock(self) -> int:
        """The simulated 'now' in Unix seconds: what the APIs treat as the current time."""
        return int(self.get_meta("clock", 0))

    def set_clock(self, now: int) -> None:
        self.set_meta("clock", int(now))

    # -- accounts (one per workspace and source: shop settings, credentials, API versions) ----

    def put_account(self, workspace: str, source: str, config: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "insert into accounts (workspace, source, config) values (?, ?, ?)"
                " on conflict (workspace, source) do update set config = excluded.config",
                (workspace, source, json.dumps(config, sort_keys=True)),
            )

    def accounts(self, source: str) -> dict[str, dict[str, Any]]:
        rows = self.conn.execute(
            "select workspace, config from accounts where source = ? order by workspace", (source,)
        )
        return {row["workspace"]: json.loads(row["config"]) for row in rows}

    # -- objects -------------------------------------------------------------------------------

    def put(
        self,
        workspace: str,
        source: str,
        kind: str,
        id: str,
        *,
        created: int,
        updated: int,
        body: dict[str, Any],
        deleted: bool = False,
    ) -> None:
        self.put_many([(workspace, source, kind, id, created, updated, deleted, body)])

    def put_many(self, rows: Iterable[tuple]) -> int:
        """Upsert `(workspace, source, kind, id, created, updated, deleted, body)` tuples."""
        encoded = (
            (w, s, k, i, int(c), int(u), int(bool(d)), json.dumps(b, separators=(",", ":")))
            for w, s, k, i, c, u, d, b in rows
        )
        with self.transaction() as conn:
            cur = conn.executemany(
                "insert into objects (workspace, source, kind, id, created, updated, deleted, body)"
                " values (?, ?, ?, ?, ?, ?, ?, ?)"
                " on conflict (workspace, source, kind, id) do update set"
                " created = excluded.created, updated = excluded.updated,"
                " deleted = excluded.deleted, body = excluded.body",
                encoded,
            )
            return cur.rowcount

    def get(self, workspace: str, source: str, kind: str, id: str) -> StoredObject | None:
        row = self.conn.execute(
            "select * from objects where workspace = ? and source = ? and kind = ? and id = ?",
            (workspace, source, kind, id),
        ).fetchone()
        return _row_to_object(row) if row else None

    def position(self, workspace: str, source: str, kind: str, id: str) -> tuple[int, str] | None:
        """The `(created, id)` of one object (a list's cursor), without reading its body."""
        row = self.conn.execute(
            "select created, id from objects where workspace = ? and source = ? and kind = ? and id = ?",
            (workspace, source, kind, id),
        ).fetchone()
        return (row["created"], row["id"]) if row else None

    def get_many(self, workspace: str, source: str, kind: str, ids: list[str]) -> dict[str, StoredObject]:
        found: dict[str, StoredObject] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"select * from objects where workspace = ? and source = ? and kind = ? and id in ({marks})",
                (workspace, source, kind, *chunk),
            )
            found.update({row["id"]: _row_to_object(row) for row in rows})
        return found

    def query(
        self,
        workspace: str,
        source: str,
        kind: str,
        *,
        order_by: str = "created",
        descending: bool = False,
        after: tuple[int, str] | None = None,
        created: dict[str, int] | None = None,
        updated: dict[str, int] | None = None,
        include_deleted: bool = False,
        limit: int | None = None,
    ) -> list[StoredObject]:
        """One page of objects in a total order of `(order_by, id)`.

        Args:
            order_by: "created" or "updated"; ties are broken by id, in the same direction.
            after: the `(timestamp, id)` of the last object of the previous page (exclusive).
            created/updated: range filters with any of the keys gt, gte, lt, lte.
        """
        if order_by not in ("created", "updated"):
            raise ValueError(f"cannot order by {order_by!r}")
        sql = ["select * from objects where workspace = ? and source = ? and kind = ?"]
        args: list[Any] = [workspace, source, kind]
        if not include_deleted:
            sql.append("and deleted = 0")
        keyset = after is not None
        for column, bounds in (("created", created), ("updated", updated)):
            if bounds and after is not None and column == order_by:
                bounds, keyset = _tightest(bounds, after[0], descending)
            for op_name, op in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")):
                if bounds and bounds.get(op_name) is not None:
                    sql.append(f"and {column} {op} ?")
                    args.append(int(bounds[op_name]))
        direction = "desc" if descending else "asc"
        if after is not None and keyset:
            sql.append(f"and ({order_by}, id) {'<' if descending else '>'} (?, ?)")
            args.extend(after)
        sql.append(f"order by {order_by} {direction}, id {direction}")
        if limit is not None:
            sql.append("limit ?")
            args.append(int(limit))
        return [_row_to_object(row) for row in self.conn.execute(" ".join(sql), args)]

    def iter_objects(
        self, workspace: str, source: str, kind: str, *, include_deleted: bool = False, batch: int = 5000
    ) -> Iterator[StoredObject]:
        """Stream every object of one kind in `(created, id)` order without holding them all."""
        after: tuple[int, str] | None = None
        while True:
            page = self.query(
                workspace, source, kind, after=after, include_deleted=include_deleted, limit=batch
            )
            yield from page
            if len(page) < batch:
                return
            after = (page[-1].created, page[-1].id)

    def count(self, workspace: str, source: str, kind: str, *, include_deleted: bool = False) -> int:
        sql = "select count(*) from objects where workspace = ? and source = ? and kind = ?"
        if not include_deleted:
            sql += " and deleted = 0"
        return self.conn.execute(sql, (workspace, source, kind)).fetchone()[0]

    def delete_older(self, source: str, kind: str, before: int) -> int:
        """Drop objects created before `before` (used to expire Stripe events after 30 days)."""
        with self.transaction() as conn:
            return conn.execute(
                "delete from objects where source = ? and kind = ? and created < ?", (source, kind, before)
            ).rowcount

    # -- plans: the simulator's record of changes still to come --------------------------------

    def put_plans(self, rows: Iterable[tuple]) -> None:
        """Upsert `(workspace, source, kind, id, next_due, plan)`; a None next_due means finished."""
        with self.transaction() as conn:
            conn.executemany(
                "insert into plans (workspace, source, kind, id, next_due, plan) values (?, ?, ?, ?, ?, ?)"
                " on conflict (workspace, source, kind, id) do update set"
                " next_due = excluded.next_due, plan = excluded.plan",
                (
                    (w, s, k, i, None if d is None else int(d), json.dumps(p, separators=(",", ":")))
                    for w, s, k, i, d, p in rows
                ),
            )

    def due_plans(self, workspace: str, source: str, until: int) -> list[tuple[str, str, dict[str, Any]]]:
        """`(kind, id, plan)` of every plan with a change due at or before `until`."""
        rows = self.conn.execute(
            "select kind, id, plan from plans where workspace = ? and source = ?"
            " and next_due is not null and next_due <= ? order by next_due, kind, id",
            (workspace, source, int(until)),
        )
        return [(row["kind"], row["id"], json.loads(row["plan"])) for row in rows]

    def get_plan(self, workspace: str, source: str, kind: str, id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "select plan from plans where workspace = ? and source = ? and kind = ? and id = ?",
            (workspace, source, kind, id),
        ).fetchone()
        return json.loads(row["plan"]) if row else None

    def iter_plans(self, workspace: str, source: str, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        rows = self.conn.execute(
            "select id, plan from plans where workspace = ? and source = ? and kind = ? order by id",
            (workspace, source, kind),
        )
        for row in rows:
            yield row["id"], json.loads(row["plan"])
