"""From Shopify nodes to flat table rows.

Both sync paths meet in one shape, the bulk-operation *line*: an object's own fields, with each
nested connection removed and its nodes emitted as lines of their own carrying `__parentId`.
A bulk operation's JSONL already is that; a paged node is first exploded into it
(`explode_node`). `TableRows` then turns each line into one row of one table, so the bulk path and
the paging path produce identical rows.

Flattening rules (`flatten`):
- money bags (`{shopMoney, presentmentMoney}`) become `<name>_amount`, `<name>_currency`,
  `<name>_presentment_amount`, `<name>_presentment_currency`; a `MoneyV2` becomes `<name>_amount`
  and `<name>_currency`. Amounts are `Decimal`, never floats;
- references (`{"id": ...}`) become `<name>_id`; other objects are flattened as `<name>_<field>`;
- lists without ids (tax lines, discount allocations, tags...) stay JSON on their parent row;
- timestamps become timezone-aware datetimes; nulls are left out (the column is declared anyway).
Conversions are best-effort: a value that does not convert is passed on as it came, so dlt stores
it in a variant column instead of the sync failing or the value being lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.ingest.shopify.queries import ObjectSpec

# Table of each nested node type, and the column its `__parentId` goes to.
NESTED_TABLES = {
    "LineItem": ("order_line_items", "order_id"),
    "ShippingLine": ("order_shipping_lines", "order_id"),
    "AutomaticDiscountApplication": ("order_discount_applications", "order_id"),
    "DiscountCodeApplication": ("order_discount_applications", "order_id"),
    "ManualDiscountApplication": ("order_discount_applications", "order_id"),
    "ScriptDiscountApplication": ("order_discount_applications", "order_id"),
    "RefundLineItem": ("order_refund_line_items", "refund_id"),
    "ProductVariant": ("product_variants", "product_id"),
}
# Interface-typed nodes keep their concrete type as a column.
TYPED_TABLES = {"order_discount_applications"}
# Tables of each top-level object, all filled from the same fetch.
TABLES = {
    "orders": (
        "orders",
        "order_line_items",
        "order_shipping_lines",
        "order_discount_applications",
        "order_refunds",
        "order_refund_line_items",
    ),
    "products": ("products", "product_variants"),
    "customers": ("customers",),
}
# Decimal-valued scalars (Shopify's `Money` travels as a decimal string).
DECIMAL_FIELDS = {"amount", "price", "compareAtPrice"}
# UnsignedInt64 counters, sent as strings by Shopify.
INTEGER_FIELDS = {"numberOfOrders"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake(name: str) -> str:
    """`totalPriceSet` -> `total_price_set`, `countryCodeV2` -> `country_code_v2`."""
    return _CAMEL.sub("_", name).lower()


def _decimal(value: Any) -> Any:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _is_money_bag(value: dict) -> bool:
    return "shopMoney" in value and set(value) <= {"shopMoney", "presentmentMoney"}


def _is_money(value: dict) -> bool:
    return set(value) - {"__typename"} == {"amount", "currencyCode"}


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One node's fields as flat columns (rules in the module docstring)."""
    row: dict[str, Any] = {}
    for key, value in node.items():
        if value is None or key in ("__typename", "__parentId"):
            continue  # a missing column is NULL; an absent object has no sub-columns to name
        column = prefix + snake(key.removesuffix("Set") if key.endswith("Set") else key)
        if isinstance(value, dict):
            if _is_money_bag(value):
                shop, presentment = value.get("shopMoney") or {}, value.get("presentmentMoney") or {}
                row[f"{column}_amount"] = _decimal(shop.get("amount"))
                row[f"{column}_currency"] = shop.get("currencyCode")
                row[f"{column}_presentment_amount"] = _decimal(presentment.get("amount"))
                row[f"{column}_presentment_currency"] = presentment.get("currencyCode")
            elif _is_money(value):
                row[f"{column}_amount"] = _decimal(value["amount"])
                row[f"{column}_currency"] = value["currencyCode"]
            else:
                row.update(flatten(value, column + "_"))
        elif key in DECIMAL_FIELDS:
            row[column] = _decimal(value)
        elif key in INTEGER_FIELDS:
            row[column] = _integer(value)
        elif key.endswith("At"):
            row[column] = _timestamp(value)
        else:
            row[column] = value
    return row


def _connection_nodes(value: Any) -> list[dict[str, Any]]:
    """Nodes of a connection as a paged query returns it (`nodes` or `edges { node }`)."""
    if not isinstance(value, dict):
        return []
    if "nodes" in value:
        return value["nodes"] or []
    return [edge["node"] for edge in value.get("edges") or ()]


def explode_node(node: dict[str, Any], spec: ObjectSpec) -> Iterator[dict[str, Any]]:
    """A paged node as the bulk lines Shopify would write for it: the node, then its children."""
    own = dict(node)
    children: list[dict[str, Any]] = []
    for nested in spec.nested:
        for child in _connection_nodes(own.pop(nested.field, None)):
            children.append({**child, "__parentId": node["id"]})
    if "refunds" in own and own["refunds"] is not None:
        refunds = []
        for refund in own["refunds"]:
            refund = dict(refund)
            for item in _connection_nodes(refund.pop("refundLineItems", None)):
                children.append({**item, "__parentId": refund["id"]})
            refunds.append(refund)
        own["refunds"] = refunds
    yield own
    yield from children


class TableRows:
    """Turns bulk lines of one top-level object type into `{table: [rows]}` batches."""

    def __init__(self, root: str, workspace_id: str):
        self.root = root
        self.workspace_id = workspace_id

    def split(self, lines: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Rows per table for a batch of lines."""
        batch: dict[str, list[dict[str, Any]]] = {table: [] for table in TABLES[self.root]}
        for line in lines:
            for table, row in self.rows(line):
                batch[table].append(row)
        return batch

    def rows(self, line: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """The `(table, row)` pairs of one line: one row, plus a top-level order's refunds."""
        parent = line.get("__parentId")
        if parent is None:
            own = dict(line)
            refunds = own.pop("refunds", None) if self.root == "orders" else None
            yield self.root, {"workspace_id": self.workspace_id, **flatten(own)}
            for refund in refunds or ():
                yield "order_refunds", {"workspace_id": self.workspace_id, "order_id": line["id"], **flatten(refund)}
            return
        typename = line.get("__typename")
        if typename not in NESTED_TABLES:
            raise ValueError(f"unexpected nested Shopify node {typename!r} under {parent}")
        table, parent_column = NESTED_TABLES[typename]
        row = {"workspace_id": self.workspace_id, parent_column: parent, **flatten(line)}
        if table in TYPED_TABLES:
            row["type"] = typename
        yield table, row
