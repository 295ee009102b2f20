"""The webhook inbox: `webhooks.inbox` in the warehouse, written by the gateway, read by the sensor.

A webhook is a notification that something changed, not the data itself: the gateway stores it as
it came (after checking its signature) and answers, and a sensor later re-fetches the named objects
through the connectors. Each row is one delivery, unique per workspace, provider and the provider's
delivery id (Shopify's X-Shopify-Webhook-Id, Stripe's event id), so a retried or replayed delivery
is written once. `inbox_id` grows with arrival and is the sensor's cursor.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.warehouse import Statements, Warehouse

TABLE = "webhooks.inbox"
COLUMNS = ("workspace_id", "provider", "delivery_id", "topic", "received_at", "payload")


@dataclass(frozen=True)
class Delivery:
    """One verified webhook, as the gateway received it."""

    workspace_id: str
    provider: str  # "shopify" or "stripe"
    delivery_id: str
    topic: str  # Shopify's X-Shopify-Topic, Stripe's event type
    received_at: datetime
    payload: str  # the raw body (JSON text)

    def row(self) -> tuple:
        return tuple(getattr(self, column) for column in COLUMNS)


def create_table(statements: Statements) -> None:
    """The inbox table, when missing. Ids come from a sequence (DuckDB) or an identity (Postgres)."""
    statements.execute("create schema if not exists webhooks")
    if statements.kind == "duckdb":
        statements.execute("create sequence if not exists webhooks.inbox_id_seq")
        identity = "bigint primary key default nextval('webhooks.inbox_id_seq')"
    else:
        identity = "bigint generated always as identity primary key"
    statements.execute(f"""
        create table if not exists {TABLE} (
            inbox_id {identity},
            workspace_id text not null,
            provider text not null,
            delivery_id text not null,
            topic text not null,
            received_at timestamp with time zone not null,
            payload text not null,
            unique (workspace_id, provider, delivery_id)
        )""")


_created: set[str] = set()  # warehouses whose inbox table this process has made sure of


def write(warehouse: Warehouse, deliveries: list[Delivery], lock_timeout: float | None = None,
          connection: Any = None) -> None:
    """Insert the deliveries, ignoring any already there (and repeats within the batch), in one statement
    and one transaction: on `connection` when given (a connection the caller keeps open; on DuckDB
    the caller holds the write lock), else on a connection of its own."""
    unique = list({(d.workspace_id, d.provider, d.delivery_id): d for d in reversed(deliveries)}.values())
    unique.reverse()  # keep the first arrival of each, in arrival order
    if not unique:
        return
    url = warehouse.location
    try:
        if connection is not None and warehouse.kind == "postgres":
            with connection, connection.cursor() as cursor:  # commits, or rolls back on error
                _insert(Statements(cursor, "%s"), unique, url)
        elif connection is not None:  # DuckDB, the caller holding the write lock
            connection.execute("begin")
            try:
                _insert(Statements(connection, "?"), unique, url)
                connection.execute("commit")
            except BaseException:
                with contextlib.suppress(Exception):  # the caller drops a connection that failed
                    connection.execute("rollback")
                raise
        else:
            with warehouse.transaction(lock_timeout=lock_timeout) as statements:
                _insert(statements, unique, url)
    except Exception:
        _created.discard(url)  # the next write makes sure of the table again
        raise
    _created.add(url)


def _insert(statements: Statements, deliveries: list[Delivery], url: str) -> None:
    if url not in _created:
        create_table(statements)
    row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    statements.execute(
        f"insert into {TABLE} ({', '.join(COLUMNS)}) values {', '.join([row] * len(deliveries))}"
        " on conflict (workspace_id, provider, delivery_id) do nothing",
        [value for delivery in deliveries for value in delivery.row()])


def read_after(warehouse: Warehouse, inbox_id: int, limit: int = 1000,
               topics: tuple[str, ...] | None = None, lock_timeout: float | None = None) -> list[dict[str, Any]]:
    """Deliveries with an id above `inbox_id` (of `topics` only, when given), oldest first, payloads parsed.

    Raises:
        TimeoutError: on DuckDB, another writer held the file for `lock_timeout` seconds.
    """
    only = f" and topic in ({', '.join(['%s'] * len(topics))})" if topics else ""
    with warehouse.transaction(lock_timeout=lock_timeout) as statements:
        create_table(statements)
        rows = statements.execute(
            f"select inbox_id, {', '.join(COLUMNS)} from {TABLE} where inbox_id > %s{only} order by inbox_id limit %s",
            (inbox_id, *(topics or ()), limit))
    names = ("inbox_id", *COLUMNS)
    return [{**dict(zip(names, row)), "payload": json.loads(row[-1])} for row in rows]
