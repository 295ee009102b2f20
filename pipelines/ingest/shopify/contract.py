"""The Shopify contract: what every order, product and customer must satisfy before it counts.

The rules are stated once, per table, on the flattened columns (columns.py), and checked by two
evaluators that give the same answer: one over the dict rows of the paging path, one vectorized over
the Arrow tables of the bulk path. An object breaking any rule, in its own row or in any child row,
is set aside whole (quarantine.py): an order without one of its lines would count wrong.

| rule | columns |
|---|---|
| required | `id` everywhere, an order's `created_at`, a line's `quantity` |
| whole number, at least 1 (0 for refunds and current quantities) | quantities |
| not negative | every money amount (Shopify money is never negative: refunds and discounts are their own fields) |
| below 10^13 | every money amount: what the warehouse holds (quarantine.AMOUNT_LIMIT) |
| ISO 4217 currency | every currency code |
| sane time: not before the shop existed, not after now plus a day | created, processed, updated, cancelled, closed times |
| unique within the sync | line item ids |
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.ingest.pipeline import SyncStats
from pipelines.ingest.quarantine import (
    AMOUNT_LIMIT,
    AMOUNT_REASON,
    CURRENCIES,
    NUL,
    Bounds,
    Quarantine,
    Violation,
    amount_reason,
    currency_reason,
    finite,
    storable,
)
from pipelines.ingest.shopify.columns import COLUMN_TYPES
from pipelines.ingest.shopify.rows import TableRows

_CURRENCY_SET = pa.array(sorted(CURRENCIES), pa.string())
# A JSON escape of a surrogate (high D800-DBFF, low DC00-DFFF; JSON's `\u` is lower case): a line
# without one holds no lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


@dataclass(frozen=True)
class Rule:
    """One check of one column: `bad_value` for a dict row's value, `bad_array` for an Arrow column."""

    column: str
    kind: str  # required | whole | amount | range | currency | time | percentage | unique
    minimum: int = 0

    def reason(self, value: Any, bounds: Bounds) -> str | None:
        """Why a dict row's value breaks the rule, or None (a missing value only breaks `required`)."""
        if self.kind == "required":
            return "required but missing" if value is None else None
        if value is None:
            return None
        if self.kind == "whole":
            if isinstance(value, bool) or not isinstance(value, int):
                return "not a whole number"
            return f"less than {self.minimum}" if value < self.minimum else None
        if self.kind == "amount":
            if not isinstance(value, (Decimal, int, float)) or isinstance(value, bool):
                return "not a number"
            return "negative amount" if finite(value) and value < 0 else None
        if self.kind == "range":
            return amount_reason(value)
        if self.kind == "percentage":
            if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
                return "not a number"
            return "not a percentage between 0 and 100" if not 0 <= value <= 100 else None
        if self.kind == "currency":
            return currency_reason(value)
        if self.kind == "time":
            return bounds.reason(value) if isinstance(value, datetime) else "not a timestamp"
        return None

    def bad_array(self, array: pa.Array, bounds: Bounds) -> tuple[pa.Array, str] | None:
        """A mask of the Arrow rows that break the rule and the reason, or None where it cannot apply.

        Types were already cast to the declared ones (arrow.py), so a value of the wrong type never
        gets here: its block failed to cast and went through the dict path instead.
        """
        if self.kind == "required":
            return pc.is_null(array), "required but missing"
        if self.kind == "whole":
            return pc.fill_null(pc.less(array, self.minimum), False), f"less than {self.minimum}"
        if self.kind == "amount":
            return pc.fill_null(pc.less(array, pa.scalar(0, array.type)), False), "negative amount"
        if self.kind == "range":  # a decimal(38, 9) column: finite, and no value past it reaches here
            beyond = pc.greater_equal(pc.abs(array), pa.scalar(AMOUNT_LIMIT, array.type))
            return pc.fill_null(beyond, False), AMOUNT_REASON
        if self.kind == "percentage":
            outside = pc.or_(pc.less(array, 0), pc.greater(array, 100))
            return pc.fill_null(outside, False), "not a percentage between 0 and 100"
        if self.kind == "currency":
            known = pc.is_in(pc.utf8_upper(array), value_set=_CURRENCY_SET)
            return pc.and_(pc.is_valid(array), pc.invert(known)), "unknown currency (not an ISO 4217 code)"
        if self.kind == "time":
            late = pc.greater(array, pa.scalar(bounds.ceiling, array.type))
            if bounds.floor is not None:
                late = pc.or_(late, pc.less(array, pa.scalar(bounds.floor, array.type)))
            return pc.fill_null(late, False), "outside the sane range (before the shop existed or after now plus a day)"
        return None


def _amount(column: str) -> list[Rule]:
    return [Rule(column, "amount"), Rule(column, "range")]


def _money(*names: str) -> list[Rule]:
    rules = []
    for name in names:
        rules += [*_amount(f"{name}_amount"), Rule(f"{name}_currency", "currency"),
                  *_amount(f"{name}_presentment_amount"), Rule(f"{name}_presentment_currency", "currency")]
    return rules


def _times(*names: str) -> list[Rule]:
    return [Rule(name, "time") for name in names]


RULES: dict[str, list[Rule]] = {
    "orders": [
        Rule("id", "required"), Rule("created_at", "required"),
        *_times("created_at", "updated_at", "processed_at", "cancelled_at", "closed_at"),
        Rule("currency_code", "currency"), Rule("presentment_currency_code", "currency"),
        *_money("subtotal_price", "total_price", "current_total_price", "total_discounts", "total_tax",
                "total_shipping_price", "total_refunded"),
    ],
    "order_line_items": [
        Rule("id", "required"), Rule("id", "unique"), Rule("quantity", "required"),
        Rule("quantity", "whole", minimum=1), Rule("current_quantity", "whole", minimum=0),
        *_money("original_unit_price", "original_total", "discounted_total", "total_discount"),
    ],
    "order_shipping_lines": [*_money("original_price", "discounted_price")],
    "order_discount_applications": [
        *_amount("value_amount"), Rule("value_currency", "currency"), Rule("value_percentage", "percentage"),
    ],
    "order_refunds": [Rule("id", "required"), *_times("created_at", "processed_at"), *_money("total_refunded")],
    "order_refund_line_items": [Rule("quantity", "whole", minimum=0), *_money("price", "subtotal", "total_tax")],
    "products": [Rule("id", "required"), *_times("created_at", "updated_at")],
    "product_variants": [
        *_amount("price"), *_amount("compare_at_price"),
        *_amount("inventory_item_unit_cost_amount"), Rule("inventory_item_unit_cost_currency", "currency"),
    ],
    "customers": [
        Rule("id", "required"), *_times("created_at", "updated_at"),
        *_amount("amount_spent_amount"), Rule("amount_spent_currency", "currency"),
    ],
}
# The column of each child table that names its parent, and the parent's table.
PARENTS = {
    "order_line_items": ("order_id", "orders"),
    "order_shipping_lines": ("order_id", "orders"),
    "order_discount_applications": ("order_id", "orders"),
    "order_refunds": ("order_id", "orders"),
    "order_refund_line_items": ("refund_id", "order_refunds"),
    "product_variants": ("product_id", "products"),
}

Found = dict[str, list[Violation]]  # object id -> what is wrong with it


def _record_id(table: str, row: dict[str, Any]) -> str | None:
    if table == "order_discount_applications":
        return f"{row.get('order_id')}#{row.get('index')}"
    return row.get("id")


def screen_rows(batch: dict[str, list[dict[str, Any]]], bounds: Bounds) -> Found:
    """What is wrong with each object of a batch of dict rows (the paging path), by object id."""
    roots = _roots_of_rows(batch)
    found: Found = {}
    for table, rows in batch.items():
        for rule in RULES.get(table, ()):
            if rule.kind == "unique":
                counts = Counter(row.get(rule.column) for row in rows if row.get(rule.column) is not None)
                bad: Callable[[Any], str | None] = lambda v, c=counts: "appears more than once" if c.get(v, 0) > 1 else None
            else:
                bad = lambda v, r=rule: r.reason(v, bounds)
            for row in rows:
                reason = bad(row.get(rule.column))
                if reason:
                    root = roots(table, row)
                    found.setdefault(root, []).append(
                        Violation(table, _record_id(table, row), rule.column, reason, row.get(rule.column)))
    return found


def _roots_of_rows(batch: dict[str, list[dict[str, Any]]]) -> Callable[[str, dict[str, Any]], str]:
    refund_orders = {row.get("id"): row.get("order_id") for row in batch.get("order_refunds", ())}

    def root(table: str, row: dict[str, Any]) -> str:
        if table == "order_refund_line_items":
            return refund_orders.get(row.get("refund_id")) or str(row.get("refund_id"))
        if table in PARENTS:
            return str(row.get(PARENTS[table][0]))
        return str(row.get("id"))

    return root


def drop_rows(batch: dict[str, list[dict[str, Any]]], bad: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The batch without any row of the objects in `bad`."""
    if not bad:
        return batch
    root = _roots_of_rows(batch)
    return {table: [row for row in rows if root(table, row) not in bad] for table, rows in batch.items()}


def screen_arrow(tables: dict[str, pa.Table], bounds: Bounds) -> Found:
    """What is wrong with each object of a bulk block's Arrow tables, by object id (same rules)."""
    found: Found = {}
    for table, rows in tables.items():
        for rule in RULES.get(table, ()):
            if rule.column not in rows.column_names:
                continue
            column = rows[rule.column].combine_chunks()
            if rule.kind == "unique":
                counts = pc.value_counts(column)
                repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
                checked = (pc.is_in(column, value_set=repeated), "appears more than once") if len(repeated) else None
            else:
                checked = rule.bad_array(column, bounds)
            if checked is None or not pc.any(checked[0]).as_py():
                continue
            mask, reason = checked
            hits = rows.filter(mask)
            roots = _roots_of_arrow(tables, table, hits)
            for hit, root in zip(hits.to_pylist(), roots):
                found.setdefault(root, []).append(
                    Violation(table, _record_id(table, hit), rule.column, reason, hit.get(rule.column)))
    return found


def _roots_of_arrow(tables: dict[str, pa.Table], table: str, rows: pa.Table) -> list[str]:
    if table not in PARENTS:
        return [str(v) for v in rows["id"].to_pylist()]
    column, _ = PARENTS[table]
    parents = rows[column].to_pylist()
    if table != "order_refund_line_items":
        return [str(v) for v in parents]
    refunds = tables.get("order_refunds")
    orders = dict(zip(refunds["id"].to_pylist(), refunds["order_id"].to_pylist())) if refunds is not None else {}
    return [str(orders.get(refund, refund)) for refund in parents]


def drop_arrow(tables: dict[str, pa.Table], bad: set[str]) -> dict[str, pa.Table]:
    """The block's tables without any row of the objects in `bad`."""
    if not bad:
        return tables
    bad_ids = pa.array(sorted(bad), pa.string())
    kept: dict[str, pa.Table] = {}
    refunds = tables.get("order_refunds")
    bad_refunds = (refunds.filter(pc.is_in(refunds["order_id"], value_set=bad_ids))["id"].combine_chunks()
                   if refunds is not None else pa.array([], pa.string()))
    for table, rows in tables.items():
        if table == "order_refund_line_items":
            gone = pc.is_in(rows["refund_id"], value_set=bad_refunds)
        else:
            column = PARENTS[table][0] if table in PARENTS else "id"
            gone = pc.is_in(rows[column], value_set=bad_ids)
        rows = rows.filter(pc.invert(gone))
        if rows.num_rows:
            kept[table] = rows
    return kept


class Screener:
    """Checks the objects of one type as they stream past, sets the bad ones aside, passes the rest on.

    Args:
        quarantine: where bad objects go.
        bounds: the sane time range.
        stats: counts the NUL characters removed and the lone surrogates replaced.
    """

    def __init__(self, quarantine: Quarantine, bounds: Bounds, stats: SyncStats):
        self.quarantine = quarantine
        self.bounds = bounds
        self.stats = stats

    def rows(self, lines: list[dict[str, Any]], splitter: TableRows) -> dict[str, list[dict[str, Any]]]:
        """The dict rows of bulk-shaped lines (the paging path, or a block Arrow could not type), screened."""
        lines, removed, replaced = storable(lines)
        self.stats.nul_removed += removed
        self.stats.surrogates_replaced += replaced
        batch = splitter.split(lines)
        found = screen_rows(batch, self.bounds)
        if found:
            created = {row.get("id"): row.get("created_at") for row in batch.get(splitter.root, ())}
            self._set_aside(found, lines, created)
        batch = drop_rows(batch, set(found))
        self.quarantine.saw_any(row.get("id") for row in batch.get(splitter.root, ()))
        return batch

    def storable_lines(self, block: bytes) -> tuple[bytes, int]:
        """`block` with every line that holds a lone surrogate read by the standard library, made storable
        (quarantine.storable: U+FFFD for each, NUL removed, both counted) and written again as compact
        JSON, and how many lines were. Arrow's reader refuses a lone surrogate escape (`"\\ud800"`), so
        the whole block went line by line; written again, the block is Arrow's, and only these lines
        take the slow path. A line is found by its surrogate escapes (a pair, one character, is kept)."""
        lines: list[bytes] = []
        rewritten, done = 0, 0  # lines rewritten; the block up to `done` is in `lines`
        for match in _SURROGATE_ESCAPE.finditer(block):
            if match.start() < done:
                continue  # in a line already read
            start = block.rfind(b"\n", 0, match.start()) + 1
            end = block.find(b"\n", match.end())
            end = len(block) if end < 0 else end
            value, removed, replaced = storable(json.loads(block[start:end]))
            if removed or replaced:  # not a pair (one character) alone, nor an escaped backslash
                self.stats.nul_removed += removed
                self.stats.surrogates_replaced += replaced
                lines += [block[done:start], json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()]
                done = end
                rewritten += 1
            else:
                lines.append(block[done:end])
                done = end
        return (b"".join(lines) + block[done:], rewritten) if rewritten else (block, 0)

    def arrow(self, tables: dict[str, pa.Table], block: bytes, root: str) -> dict[str, pa.Table]:
        """A bulk block's Arrow tables, screened (NUL removed, bad objects set aside)."""
        tables = {name: self._without_nul(name, rows) for name, rows in tables.items()}
        found = screen_arrow(tables, self.bounds)
        if found:
            lines, _, _ = storable([json.loads(line) for line in block.splitlines() if line.strip()])
            roots = tables[root].filter(pc.is_in(tables[root]["id"], value_set=pa.array(sorted(found), pa.string())))
            self._set_aside(found, lines, dict(zip(roots["id"].to_pylist(), roots["created_at"].to_pylist())))
        tables = drop_arrow(tables, set(found))
        if root in tables and self.quarantine.open_rows:
            self.quarantine.saw_any(tables[root]["id"].to_pylist())
        return tables

    def _set_aside(self, found: Found, lines: list[dict[str, Any]], created: dict[str, Any]) -> None:
        """Quarantine each bad object with its raw bulk lines (the object's own line, then its children)."""
        raw: dict[str, list[dict[str, Any]]] = {}
        owner: dict[str, str] = {}  # a line id or an inline refund id -> its root object's id
        for line in lines:
            parent, line_id = line.get("__parentId"), line.get("id")  # some child lines have no id
            root = line_id if parent is None else owner.get(parent, parent)
            if line_id is not None:
                owner[line_id] = root
            if parent is None:  # an order's refunds are inline; their line items name the refund
                for refund in line.get("refunds") or ():
                    owner[refund.get("id")] = root
            if root in found:
                raw.setdefault(root, []).append(line)
        for object_id, violations in found.items():
            moment = created.get(object_id)
            sane = isinstance(moment, datetime) and self.bounds.reason(moment) is None
            self.quarantine.add(object_id, violations, raw.get(object_id, []), moment if sane else None)

    def _without_nul(self, table: str, rows: pa.Table) -> pa.Table:
        """`rows` with NUL removed from text, and from JSON text as its `\\u0000` escape."""
        for index, name in enumerate(rows.column_names):
            column = rows[name]
            if not pa.types.is_string(column.type):
                continue
            pattern = "\\u0000" if COLUMN_TYPES.get(table, {}).get(name) == "json" else NUL
            hits = pc.sum(pc.count_substring(column, pattern)).as_py() or 0
            if hits:
                self.stats.nul_removed += hits
                rows = rows.set_column(index, rows.field(index), pc.replace_substring(column, pattern, ""))
        return rows
