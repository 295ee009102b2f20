"""Record contracts and the quarantine: bad records are set aside with their reasons, the rest load.

Each connector checks every object against its source's contract before it counts (types, required
fields, known currencies, sign rules, sane dates; shopify/contract.py and stripe/contract.py). An
object that breaks a rule is not loaded at all, neither its row nor its children (an order without
one of its lines would be a wrong order), and each broken rule becomes one row of the raw table
`<source>.quarantine_<table>`, loaded in the same dlt package as the good rows and the advanced
cursor. dbt exposes those tables as `quarantine.<source>_<table>` and counts them per day in
`metrics.data_quality_daily`; docs/operations.md says what an operator does with them.

A record stays open until a later sync reads the object again: then it is resolved
(`resolved_at`), or replaced by the object's new violations. Values a destination cannot store
but that carry no meaning are made storable before anything else, in keys as in values, and
counted: NUL characters (Postgres rejects them in text and JSON) are removed, and lone surrogates
(no UTF-8 text holds one) become U+FFFD, the replacement character.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson

from pipelines.currencies import KNOWN
from pipelines.ingest import existing

# ISO 4217 codes as CLDR (Babel) knows them, current and historical (pipelines/currencies.py): an
# amount in a code outside this list cannot be converted or even formatted, so the record is quarantined.
CURRENCIES = KNOWN
NUL = "\x00"
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # in a str read from JSON, only a lone one (a pair is one character)
REPLACEMENT = "\ufffd"
VALUE_CHARS = 200  # how much of an offending value a quarantine row shows
# How far past "now" a timestamp may lie: clocks differ, and a day covers every timezone.
FUTURE_SLACK = timedelta(days=1)
# The largest money amount the warehouse holds, in major units (exclusive, either sign). Amounts are
# decimal(38, 9) from the raw tables on (Shopify's columns; Stripe's minor units are bigint), and a
# conversion to the reporting currency (macro fx_convert) takes amount × 10^9 × rate × 10^10 × 2 as
# one 38-digit whole number: an amount below 10^13 leaves 6 digits for the rate, any rate below
# 850,000 units per euro (the largest quoted today are about 100,000). Beyond it DuckDB stops the
# whole model, for every workspace; below it a shop's single order is still $10,000,000,000,000
# (the tenant matrix's huge order, 10,000 × 99,999,999 of a zero-decimal currency with its tax, is
# 1.2 × 10^12).
AMOUNT_LIMIT = Decimal(10) ** 13
AMOUNT_REASON = "amount beyond what the warehouse holds (10^13 or more in major units, either sign)"
# Stripe's integers load as bigint: a whole number outside it cannot be loaded at all.
BIGINT = (-(2**63), 2**63 - 1)

# Column hints of every `quarantine_<table>` raw table.
COLUMNS: dict[str, dict[str, Any]] = {
    "quarantine_id": {"data_type": "text", "nullable": False},
    "workspace_id": {"data_type": "text", "nullable": False},
    "object_id": {"data_type": "text", "nullable": False},
    "record_table": {"data_type": "text"},
    "record_id": {"data_type": "text"},
    "field": {"data_type": "text"},
    "reason": {"data_type": "text"},
    "value": {"data_type": "text"},
    "raw_record": {"data_type": "json"},
    "object_time": {"data_type": "timestamp"},
    "first_seen_at": {"data_type": "timestamp"},
    "last_seen_at": {"data_type": "timestamp"},
    "resolved_at": {"data_type": "timestamp"},
}


def table_name(table: str) -> str:
    """The raw quarantine table of an object table: `orders` -> `quarantine_orders`."""
    return f"quarantine_{table}"


@dataclass(frozen=True)
class Violation:
    """One broken rule: which record and field of an object, why, and the value found."""

    record_table: str
    record_id: str | None
    field: str
    reason: str
    value: Any = None


@dataclass(frozen=True)
class Bounds:
    """The sane range of an object's timestamps: not before the account existed, not after now + a day."""

    floor: datetime | None
    ceiling: datetime

    @classmethod
    def at(cls, now: datetime, floor: datetime | None = None) -> "Bounds":
        return cls(floor=floor, ceiling=now + FUTURE_SLACK)

    @functools.cached_property
    def whole_seconds(self) -> tuple[int, int]:
        """The whole seconds after 1970 that are sane times, as (earliest, latest): a Unix timestamp
        between them needs no datetime to be judged sane; one outside is judged by `reason`."""
        epoch, second = datetime(1970, 1, 1, tzinfo=UTC), timedelta(seconds=1)
        latest = (self.ceiling - epoch) // second  # the last whole second not after the ceiling
        earliest = 1 if self.floor is None else max(1, -((epoch - self.floor) // second))  # the first not before the floor
        return earliest, latest

    def reason(self, moment: datetime) -> str | None:
        """Why `moment` is not a sane time for a record, or None."""
        if moment > self.ceiling:
            return f"later than now plus a day ({self.ceiling:%Y-%m-%d %H:%M} UTC)"
        if self.floor is not None and moment < self.floor:
            return f"before the account existed ({self.floor:%Y-%m-%d})"
        return None


def currency_reason(code: Any) -> str | None:
    """Why `code` is not a currency the pipeline can use, or None (null is left to other rules)."""
    if code is None:
        return None
    if not isinstance(code, str) or code.upper() not in CURRENCIES:
        return "unknown currency (not an ISO 4217 code)"
    return None


def amount_reason(major: Any) -> str | None:
    """Why a money amount in major units is beyond the warehouse's range, or None (numbers only)."""
    if isinstance(major, bool) or not isinstance(major, (int, float, Decimal)):
        return None
    if not finite(major):
        return "not a finite number"
    return AMOUNT_REASON if abs(major) >= AMOUNT_LIMIT else None


def finite(number: float | Decimal) -> bool:
    return number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)


def storable(value: Any) -> tuple[Any, int, int]:
    """`value` as a warehouse can store every string inside it, keys too, and what changed: NUL
    characters removed (how many: as the Arrow path counts them) and each lone surrogate replaced by U+FFFD (how many).

    A lone surrogate is half of a UTF-16 pair, read from a JSON escape such as `\\ud800` without its
    other half: no UTF-8 text holds one, so pyarrow and psycopg2 refuse it. A whole pair is read as the
    one character it stands for and is not touched.
    """
    # orjson writes no lone surrogate (it raises) and escapes NUL: a value it writes without that
    # escape holds neither, and its C writer is seven times faster than the walk below.
    try:
        if b"\\u0000" not in orjson.dumps(value):
            return value, 0, 0
    except TypeError:  # a lone surrogate, or a value orjson does not write (a number beyond 64 bits)
        pass
    counts = [0, 0]
    cleaned = _storable(value, counts)
    return cleaned, counts[0], counts[1]


def _storable(value: Any, counts: list[int]) -> Any:
    if isinstance(value, str):
        return value if NUL not in value and value.isascii() else _storable_text(value, counts)
    if isinstance(value, dict):
        return {(_storable_text(key, counts) if isinstance(key, str) and (NUL in key or not key.isascii()) else key):
                _storable(item, counts) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item, counts) for item in value]
    return value


def _storable_text(text: str, counts: list[int]) -> str:
    if NUL in text:
        counts[0] += text.count(NUL)
        text = text.replace(NUL, "")
    if not text.isascii():  # a flag of the string: no scan
        text, lone = LONE_SURROGATE.subn(REPLACEMENT, text)
        counts[1] += lone
    return text


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if isinstance(value, (datetime, date)) else str(value)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "..."


def _json_safe(value: Any) -> Any:
    """The raw record as JSON values (bulk lines and API objects are JSON already; paged rows may hold
    Decimals); a whole number beyond 64 bits as text, since the JSON writer stops on it."""
    return _wide_ints_as_text(json.loads(json.dumps(value, default=lambda v: str(v) if isinstance(v, Decimal) else _shown(v))))


def _wide_ints_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not BIGINT[0] <= value <= BIGINT[1]:
        return str(value)
    if isinstance(value, dict):
        return {key: _wide_ints_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_text(item) for item in value]
    return value


def _quarantine_id(workspace_id: str, object_id: str, violation: Violation) -> str:
    key = "\x1f".join([workspace_id, object_id, violation.record_table, violation.record_id or "", violation.field])
    return hashlib.sha1(key.encode()).hexdigest()


class OpenRecords:
    """The records still open from earlier syncs in the quarantine of several object tables of one
    workspace, read together when the first of them is needed: one connection to the warehouse per
    sync instead of one per table (each costs a DuckDB file open, a tenth of a second or more)."""

    def __init__(self, workspace_id: str, tables: Iterable[str]):
        self.workspace_id = workspace_id
        self.tables = list(tables)
        self._rows: dict[str, list[dict[str, Any]]] = {}  # quarantine table -> open records

    def of(self, table: str) -> list[dict[str, Any]]:
        """The open records of object table `table` (needs a running dlt pipeline); a table beyond those
        named at first is read when asked for."""
        if table_name(table) not in self._rows:
            unread = [name for name in map(table_name, dict.fromkeys([*self.tables, table])) if name not in self._rows]
            self._rows.update(existing.rows_where_each(unread, self.workspace_id, "resolved_at is null"))
        return self._rows[table_name(table)]


@dataclass
class Quarantine:
    """The quarantine of one object table during one sync of one workspace.

    Args:
        source: `shopify` or `stripe`.
        workspace_id: stamped on every row.
        table: the object table (`orders`, `invoices`...); rows go to `quarantine_<table>`.
        now: when the sync ran (`first_seen_at`, `last_seen_at`, `resolved_at`).
        records: where its open records come from, read with those of the sync's other tables; by
            default they are read alone.
    """

    source: str
    workspace_id: str
    table: str
    now: datetime
    records: OpenRecords | None = None
    _open: dict[str, list[dict[str, Any]]] | None = None  # object id -> its open rows, read lazily
    _new: dict[str, dict[str, Any]] = field(default_factory=dict)  # quarantine_id -> row
    _seen: set[str] = field(default_factory=set)  # open objects this sync read again
    _fresh: set[str] = field(default_factory=set)  # objects set aside for the first time

    @property
    def open_rows(self) -> dict[str, list[dict[str, Any]]]:
        """Records still open from earlier syncs, by object id (needs a running dlt pipeline)."""
        if self._open is None:
            self._open = {}
            records = self.records or OpenRecords(self.workspace_id, [self.table])
            for row in records.of(self.table):
                if isinstance(row.get("raw_record"), str):  # DuckDB hands JSON back as text
                    row["raw_record"] = json.loads(row["raw_record"])
                self._open.setdefault(row["object_id"], []).append(row)
        return self._open

    def add(self, object_id: str, violations: Iterable[Violation], raw: Any, object_time: datetime | None) -> None:
        """Set one object aside: a row per violation, each carrying the raw record."""
        raw = _json_safe(raw)
        earlier = {row["quarantine_id"]: row for row in self.open_rows.get(object_id, [])}
        if not earlier:
            self._fresh.add(object_id)
        for violation in violations:
            quarantine_id = _quarantine_id(self.workspace_id, object_id, violation)
            first_seen = (earlier.get(quarantine_id) or {}).get("first_seen_at") or self.now
            self._new[quarantine_id] = {
                "quarantine_id": quarantine_id, "workspace_id": self.workspace_id, "object_id": object_id,
                "record_table": violation.record_table, "record_id": violation.record_id,
                "field": violation.field, "reason": violation.reason, "value": _shown(violation.value),
                "raw_record": raw, "object_time": object_time, "first_seen_at": first_seen,
                "last_seen_at": self.now, "resolved_at": None,
            }
        self.saw(object_id)

    def saw(self, object_id: str) -> None:
        """Note that this sync read `object_id` (open records of it not found again get resolved)."""
        if object_id in self.open_rows:
            self._seen.add(object_id)

    def saw_any(self, object_ids: Iterable[str]) -> None:
        open_ids = self.open_rows
        if open_ids:
            self._seen.update(object_id for object_id in object_ids if object_id in open_ids)

    @property
    def read(self) -> set[str]:
        """Ids of the open objects this sync read (cleanly or not): the others wait for a replay."""
        return self._seen | self.objects

    @property
    def objects(self) -> set[str]:
        """Ids of the objects this sync set aside (again or for the first time)."""
        return {row["object_id"] for row in self._new.values()}

    @property
    def fresh(self) -> set[str]:
        """Ids of the objects this sync set aside that were not in quarantine already."""
        return set(self._fresh)

    def rows(self) -> list[dict[str, Any]]:
        """New and renewed records, and the earlier records of objects read again that are resolved now."""
        resolved = []
        for object_id in self._seen:
            for row in self.open_rows.get(object_id, []):
                if row["quarantine_id"] not in self._new:
                    resolved.append({**row, "last_seen_at": self.now, "resolved_at": self.now})
        return [*self._new.values(), *resolved]

    def summary(self, limit: int = 20) -> list[str]:
        """One line per object newly set aside, `<object id>: <table>.<field> <reason> (<value>)` with
        its first broken rule and how many more, for logs and the operator alert."""
        by_object: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(self._new.values(), key=lambda r: (r["object_id"], r["record_table"], r["field"])):
            if row["object_id"] in self._fresh:
                by_object.setdefault(row["object_id"], []).append(row)
        lines = []
        for object_id, rows in by_object.items():
            first = rows[0]
            value = f" ({first['value']})" if first["value"] is not None else ""
            more = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
            lines.append(f"{object_id}: {first['record_table']}.{first['field']} {first['reason']}{value}{more}")
        return lines[:limit] + ([f"... and {len(lines) - limit} more objects"] if len(lines) > limit else [])


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def batches(quarantines: Iterable[Quarantine]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """`(quarantine table, rows)` for every quarantine with something to write."""
    for quarantine in quarantines:
        rows = quarantine.rows()
        if rows:
            yield table_name(quarantine.table), rows
