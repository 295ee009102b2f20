"""Reading Shopify nodes from the sandbox store: search syntax, keyset pages, references, the shop node.

Shared by the GraphQL resolvers (api.py) and the bulk exporter (bulk.py), so both
see the same objects for the same `query:` filter.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from graphql import GraphQLError

from pipelines import json_io
from pipelines.sandbox.core.times import iso

ORDER_WINDOW_SECONDS = 60 * 86400  # without read_all_orders, only the last 60 days of orders
KINDS = {"orders": "order", "products": "product", "customers": "customer"}
TYPE_KINDS = {"Order": "order", "Product": "product", "Customer": "customer"}
# Sort keys the sandbox serves, and the store column each one orders by (None: the id itself).
# The store has no processed time: sandbox orders are processed when they are created.
SORT_COLUMNS = {"ID": None, "CREATED_AT": "created", "PROCESSED_AT": "created", "UPDATED_AT": "updated"}

_TERM = re.compile(r"""(-?)(\w+):(>=|<=|>|<|)("[^"]*"|'[^']*'|\S+)""")
_COMPARE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


@dataclass
class Search:
    """A parsed `query:` argument, as SQL conditions on the store's `objects` table."""

    text: str | None = None
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)


def _timestamp(value: str, tz: str, now: int) -> tuple[int, int]:
    """A search value as the half-open range `[start, end)` of Unix seconds it denotes."""
    if value == "now":
        return now, now + 1
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):  # a whole day, in the shop's timezone
        start = datetime.fromisoformat(value).replace(tzinfo=ZoneInfo(tz))
        return int(start.timestamp()), int((start + timedelta(days=1)).timestamp())
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return int(moment.timestamp()), int(moment.timestamp()) + 1


def parse_search(text: str | None, kind: str, *, tz: str = "UTC", now: int = 0) -> Search:
    """Parse Shopify search syntax: `updated_at:>='2026-01-01T00:00:00Z' test:false status:open`.

    Supported fields: created_at, updated_at and processed_at (all with :, :>, :>=, :<, :<=),
    test (orders), status (orders: open/closed/cancelled/not_closed; products: active/draft/archived)
    and id. Other terms are ignored with a warning, as Shopify does for unknown search fields.
    """
    search = Search(text=text)
    for negate, name, op, raw in _TERM.findall(text or ""):
        value = raw.strip("'\"")
        where, args = _condition(kind, name, op, value, tz, now)
        if where is None:
            search.warnings.append({"field": name, "message": "Invalid search field for this query."})
            continue
        search.where.append(f"not ({where})" if negate else where)
        search.args.extend(args)
    leftover = _TERM.sub("", text or "").replace(" AND ", " ").strip()
    if leftover:
        search.warnings.append({"field": "default", "message": f"Free-text search is not supported: {leftover!r}"})
    return search


def _condition(kind: str, name: str, op: str, value: str, tz: str, now: int) -> tuple[str | None, list[Any]]:
    if name in ("created_at", "updated_at", "processed_at"):
        column = "updated" if name == "updated_at" else "created"
        try:
            start, end = _timestamp(value, tz, now)
        except ValueError as exc:
            raise GraphQLError(f"Invalid timestamp {value!r} for {name}") from exc
        if not op:
            return f"{column} >= ? and {column} < ?", [start, end]
        bound = {"gt": (">=", end), "gte": (">=", start), "lt": ("<", start), "lte": ("<", end)}[_COMPARE[op]]
        return f"{column} {bound[0]} ?", [bound[1]]
    if name == "id" and not op:
        return "id = ? or id like ?", [value, f"%/{value}"]
    if name == "test" and kind == "order" and not op:
        return "json_extract(body, '$.test') = ?", [int(value.lower() == "true")]
    if name == "status" and kind == "order" and not op:
        states = {
            "open": "json_extract(body, '$.closedAt') is null and json_extract(body, '$.cancelledAt') is null",
            "closed": "json_extract(body, '$.closedAt') is not null",
            "cancelled": "json_extract(body, '$.cancelledAt') is not null",
            "not_closed": "json_extract(body, '$.closedAt') is null",
            "any": "1 = 1",
        }
        return states.get(value.lower()), []
    if name == "status" and kind == "product" and not op:
        return "json_extract(body, '$.status') = ?", [value.upper()]
    return None, []


# -- cursors -------------------------------------------------------------------------------------


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor: the sort key's value and the id, so paging is keyset, never offset."""
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str) -> list[Any]:
    """The parts of a cursor made with `encode_cursor(tag, ...)`; a GraphQL error otherwise."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        parts = None
    if not isinstance(parts, list) or not parts or parts[0] != tag:
        raise GraphQLError(f"Invalid cursor for the current query: {cursor!r}")
    return parts[1:]


# -- pages of top-level nodes --------------------------------------------------------------------


@dataclass
class Page:
    nodes: list[dict[str, Any]]
    cursors: list[str]
    has_next: bool
    has_previous: bool


def scope_filter(kind: str, scopes: list[str], now: int) -> tuple[list[str], list[Any]]:
    """SQL hiding what the token may not see: orders older than 60 days without read_all_orders."""
    if kind == "order" and "read_all_orders" not in scopes:
        return ["created >= ?"], [now - ORDER_WINDOW_SECONDS]
    return [], []


def base_sql(workspace: str, kind: str, search: Search, hidden: tuple[list[str], list[Any]]) -> tuple[str, list]:
    where = ["workspace = ?", "source = 'shopify'", "kind = ?", "deleted = 0", *hidden[0], *search.where]
    return "select id, created, updated, body from objects where " + " and ".join(
        f"({w})" for w in where
    ), [workspace, kind, *hidden[1], *search.args]


def page(
    conn: sqlite3.Connection,
    workspace: str,
    kind: str,
    search: Search,
    hidden: tuple[list[str], list[Any]],
    *,
    sort_key: str,
    reverse: bool,
    first: int | None,
    last: int | None,
    after: str | None,
    before: str | None,
) -> Page:
    """One page in the total order `(sort value, id)`; cursors carry both, so no object is skipped
    or repeated while others change between pages (an updated object moves past the cursor)."""
    column = SORT_COLUMNS[sort_key]
    key = f"({column}, id)" if column else "id"
    sql, args = base_sql(workspace, kind, search, hidden)
    descending = reverse != (last is not None)  # paging backwards walks the order in reverse
    for cursor, beyond in ((after, not reverse), (before, reverse)):
        if cursor is None:
            continue
        value = decode_cursor(cursor, sort_key)
        sql += f" and {key} {'>' if beyond else '<'} ({', '.join('?' * len(value))})"
        args.extend(value)
    direction = "desc" if descending else "asc"
    sql += f" order by {column + ' ' + direction + ', ' if column else ''}id {direction} limit ?"
    size = first if last is None else last
    rows = conn.execute(sql, [*args, size + 1]).fetchall()
    more = len(rows) > size
    rows = rows[:size]
    if last is not None:
        rows.reverse()
    nodes = [json_io.loads(row[3], wide_ints=False) for row in rows]
    cursors = [
        encode_cursor(sort_key, *((row[1 if column == "created" else 2], row[0]) if column else (row[0],)))
        for row in rows
    ]
    if last is None:
        return Page(nodes, cursors, has_next=more, has_previous=after is not None)
    return Page(nodes, cursors, has_next=before is not None, has_previous=more)


def count(conn: sqlite3.Connection, workspace: str, kind: str, search: Search, hidden, limit: int | None) -> dict:
    sql, args = base_sql(workspace, kind, search, hidden)
    sql = sql.replace("select id, created, updated, body", "select count(*)", 1)
    if limit is not None:
        sql = f"select count(*) from ({sql.replace('count(*)', '1', 1)} limit ?)"
        args.append(limit + 1)
    found = conn.execute(sql, args).fetchone()[0]
    if limit is not None and found > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": found, "precision": "EXACT"}


def get_node(conn: sqlite3.Connection, workspace: str, kind: str, gid: str, hidden) -> dict[str, Any] | None:
    sql, args = base_sql(workspace, kind, Search(), hidden)
    row = conn.execute(sql + " and id = ?", [*args, gid]).fetchone()
    return json_io.loads(row[3], wide_ints=False) if row else None


# -- references and derived fields ---------------------------------------------------------------


def legacy_resource_id(node: dict[str, Any]) -> str | None:
    """`gid://shopify/Order/123` → "123" (UnsignedInt64 travels as a string, as Shopify sends it)."""
    gid = node.get("id")
    return gid.rsplit("/", 1)[-1] if isinstance(gid, str) else None


class Lookup:
    """Resolves `{"id": gid}` references to full nodes, for one request or one bulk export.

    Orders, customers and products come from the store; variants from an index of the shop's
    products (loaded once); line items from the orders being served (refund line items only ever
    point into their own order), which callers register with `track`.
    """

    def __init__(self, conn: sqlite3.Connection, workspace: str):
        self.conn = conn
        self.workspace = workspace
        self.roots: list[dict[str, Any]] = []
        self._nested: dict[str, dict[str, Any]] = {}
        self._indexed = 0
        self._variants: dict[str, dict[str, Any]] | None = None

    def track(self, roots: list[dict[str, Any]], *, replace: bool = False) -> None:
        """Register top-level nodes whose line items references may point to."""
        if replace:  # bulk exports serve one root at a time; forget the previous one
            self.roots, self._indexed = roots, 0
            self._nested.clear()
        else:
            self.roots.extend(roots)

    def resolve(self, typename: str, ref: dict[str, Any]) -> dict[str, Any]:
        gid = ref.get("id")
        if typename in TYPE_KINDS:
            found = get_node(self.conn, self.workspace, TYPE_KINDS[typename], gid, ([], []))
        elif typename in ("ProductVariant", "InventoryItem"):
            found = self._variant_index().get(gid)
        else:
            for root in self.roots[self._indexed :]:
                for item in root.get("lineItems") or ():
                    self._nested[item.get("id")] = item
            self._indexed = len(self.roots)
            found = self._nested.get(gid)
        if not found:
            return ref
        return found if ref.keys() == {"id"} else {**found, **ref}

    def _variant_index(self) -> dict[str, dict[str, Any]]:
        if self._variants is None:
            self._variants = {}
            sql, args = base_sql(self.workspace, "product", Search(), ([], []))
            for row in self.conn.execute(sql, args):
                for variant in json_io.loads(row[3], wide_ints=False).get("variants") or ():
                    self._variants[variant.get("id")] = variant
                    item = variant.get("inventoryItem")
                    if isinstance(item, dict):
                        self._variants[item.get("id")] = item
        return self._variants


def shop_node(account: dict[str, Any], now: int) -> dict[str, Any]:
    """The `shop` object, from the account settings."""
    tz = account.get("timezone", "UTC")
    local = datetime.fromtimestamp(now, timezone.utc).astimezone(ZoneInfo(tz))
    offset = int(local.utcoffset().total_seconds() // 60)
    domain = f"{account['shop']}.myshopify.com"
    number = int.from_bytes(account["shop"].encode()[:6].ljust(6, b"\0"), "big") % 10**11
    email = f"owner@{domain}"
    return {
        "id": f"gid://shopify/Shop/{number}",
        "name": account.get("name", account["shop"]),
        "email": email,
        "contactEmail": email,
        "myshopifyDomain": domain,
        "url": f"https://{domain}",
        "primaryDomain": {"id": f"gid://shopify/Domain/{number}", "host": domain, "url": f"https://{domain}",
                          "sslEnabled": True},
        "currencyCode": account.get("currency", "USD"),
        "enabledPresentmentCurrencies": account.get("presentment_currencies") or [account.get("currency", "USD")],
        "ianaTimezone": tz,
        "timezoneAbbreviation": local.tzname(),
        "timezoneOffset": local.strftime("%z"),
        "timezoneOffsetMinutes": offset,
        "plan": {"publicDisplayName": "Basic", "partnerDevelopment": True, "shopifyPlus": False},
        "createdAt": account.get("created_at") or iso(0),
        "updatedAt": iso(now),
        "taxesIncluded": False,
        "taxShipping": False,
        "orderNumberFormatPrefix": "#",
        "orderNumberFormatSuffix": "",
        "unitSystem": "METRIC_SYSTEM",
        "weightUnit": "KILOGRAMS",
        "shopAddress": {"id": f"gid://shopify/ShopAddress/{number}", "country": None, "countryCodeV2": None,
                        "city": None, "province": None, "provinceCode": None, "zip": None, "company": None},
    }
