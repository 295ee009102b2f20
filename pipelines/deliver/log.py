"""The delivery log, `insights.deliveries`: one row per (report, channel, recipient).

A row is written as `pending` before anything is sent and updated once the attempt's outcome is
known, so a crash between sending and recording leaves a `pending` row that the next run
reconciles (docs/delivery.md). Statuses:

| status | meaning |
|---|---|
| pending | an attempt started and its outcome was not recorded (in flight, or the process died) |
| sent | delivered; `external_id` is the Slack ts, the Message-ID or the outbox file |
| failed | the last attempt failed (`last_error`); retried next run until `attempts` reaches the maximum |
| unconfirmed | an email whose outcome cannot be known (see docs/delivery.md); never resent by itself |

Its companion `insights.delivery_leases` holds the lease a run takes before it sends a report to a
channel (`pipelines.deliver.lease`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from pipelines.warehouse import Warehouse

TABLE = "insights.deliveries"
LEASE_TABLE = "insights.delivery_leases"
KEY = ["report_id", "channel", "recipient"]
# Created up front, not from the first row written, so two runs starting at once cannot race to create it.
COLUMNS = {"report_id": "text", "workspace_id": "text", "week": "text", "channel": "text", "recipient": "text",
           "status": "text", "via": "text", "attempts": "bigint", "last_error": "text", "external_id": "text",
           "run_id": "text", "first_attempt_at": "timestamp with time zone",
           "last_attempt_at": "timestamp with time zone", "sent_at": "timestamp with time zone"}
LEASE_COLUMNS = {"workspace_id": "text not null", "week": "text not null", "channel": "text not null",
                 "holder": "text not null", "expires_at": "timestamp with time zone not null"}
STATUSES = ("pending", "sent", "failed", "unconfirmed")
TIMESTAMPS = ["first_attempt_at", "last_attempt_at", "sent_at"]


@dataclass(frozen=True)
class Delivery:
    """One report to one target, and what happened to it so far."""

    report_id: str
    workspace_id: str
    week: str
    channel: str  # "slack" or "email"
    recipient: str  # the Slack channel or the email address
    status: str = "new"  # not in the log yet; otherwise one of STATUSES
    via: str | None = None  # "slack", "smtp" or "outbox"
    attempts: int = 0
    last_error: str | None = None
    external_id: str | None = None
    run_id: str | None = None
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def key(self) -> str:
        """The idempotency key as one string, e.g. "demo-saas:2026-W47|email|founders@metricly.example"."""
        return f"{self.report_id}|{self.channel}|{self.recipient}"

    def replace(self, **changes) -> Delivery:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DeliveryLog:
    """`insights.deliveries` in the warehouse (DuckDB or Postgres)."""

    warehouse: Warehouse

    def create(self) -> None:
        """Create the log and its lease table where they are missing."""
        statements = [
            "create schema if not exists insights",
            f"create table if not exists {TABLE} ({_columns(COLUMNS)})",
            f"create table if not exists {LEASE_TABLE} ({_columns(LEASE_COLUMNS)}, "
            "primary key (workspace_id, week, channel))",
        ]
        if self.warehouse.kind == "postgres":  # concurrent "create ... if not exists" can collide there
            statements.insert(0, f"select pg_advisory_xact_lock(hashtext('{TABLE}'))")
        # One script (one transaction on Postgres); its last statement gives `query` a result to read.
        self.warehouse.query("; ".join([*statements, "select 1 as created"]))

    def load(self, workspace_id: str, *, report_id: str | None = None,
             channel: str | None = None) -> dict[tuple[str, str, str], Delivery]:
        """The workspace's rows (or one report's, on one channel) by (report_id, channel, recipient)."""
        if not self._exists():
            return {}
        sql, params = f"select * from {TABLE} where workspace_id = %s", [workspace_id]
        for column, value in (("report_id", report_id), ("channel", channel)):
            if value is not None:
                sql += f" and {column} = %s"
                params.append(value)
        frame = self.warehouse.query(sql, params)
        return {(row.report_id, row.channel, row.recipient): row for row in map(_delivery, frame.to_dict("records"))}

    def save(self, delivery: Delivery) -> Delivery:
        """Insert or replace the row of `delivery` (one transaction)."""
        if delivery.status not in STATUSES:
            raise ValueError(f"a delivery cannot be saved with status {delivery.status!r}")
        row = {field.name: getattr(delivery, field.name) for field in dataclasses.fields(Delivery)}
        frame = pd.DataFrame([row]).astype({"attempts": "int64"})
        for column in TIMESTAMPS:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        for column in ["via", "last_error", "external_id", "run_id"]:
            frame[column] = frame[column].astype("string")
        self.warehouse.upsert(TABLE, frame, key=KEY)
        return delivery

    def unfinished(self) -> list[Delivery]:
        """Every workspace's `failed` and `pending` rows."""
        if not self._exists():
            return []
        frame = self.warehouse.query(f"select * from {TABLE} where status in ('failed', 'pending')")
        return [_delivery(row) for row in frame.to_dict("records")]

    def outbox_paths(self, *, run_id: str, workspace_id: str | None = None) -> list[str]:
        """The outbox files the run `run_id` delivered to."""
        if not self._exists():
            return []
        sql = f"select external_id from {TABLE} where via = 'outbox' and status = 'sent' and run_id = %s"
        params = [run_id]
        if workspace_id:
            sql += " and workspace_id = %s"
            params.append(workspace_id)
        return sorted(self.warehouse.query(sql, params)["external_id"].tolist())

    def _exists(self) -> bool:
        return self.warehouse.table_exists(TABLE)


def _columns(columns: dict[str, str]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns.items())


def now() -> datetime:
    return datetime.now(timezone.utc)


def _delivery(row: dict) -> Delivery:
    values = {name: (None if _missing(value) else value) for name, value in row.items()
              if name in {field.name for field in dataclasses.fields(Delivery)}}
    values["attempts"] = int(values.get("attempts") or 0)
    for column in TIMESTAMPS:
        if values.get(column) is not None:
            stamp = pd.Timestamp(values[column])
            values[column] = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
    return Delivery(**values)


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
