"""The Shopify source: orders (with line items, shipping lines, discounts, refunds), products with
variants, and customers, from the Admin GraphQL API, one dlt pipeline per workspace.

Each top-level object type has one hidden parent resource that fetches it (a bulk operation on the
first sync, `updated_at` pages after that) and yields `{table: rows}` batches; one dlt transformer
per table picks its rows, so dlt evaluates each fetch once for all of its tables. Cursors live in
the source state (`cursors.<orders|products|customers>`), which dlt stores in the destination.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from pipelines.ingest import existing, quarantine
from pipelines.ingest.pipeline import SyncStats, merge_hints
from pipelines.ingest.quarantine import Bounds, OpenRecords, Quarantine
from pipelines.ingest.shopify import queries, rows
from pipelines.ingest.shopify.arrow import ARROW_ERRORS, ArrowTables, blocks
from pipelines.ingest.shopify.client import ShopifyApiError, ShopifyAuthError, ShopifyClient
from pipelines.ingest.shopify.columns import column_hints
from pipelines.ingest.shopify.contract import Screener
from pipelines.own_load_jobs import COLUMN_ORDER
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace, WorkspaceError

__all__ = ["shopify_source", "ShopifyAuthError", "ShopifyApiError", "TABLES"]

TABLES = rows.TABLES
# Above this many changed objects, a later sync reads them through one bulk operation filtered on
# updated_at instead of paging. A paged order costs about 75 query points once the bucket's first
# 1,000 are spent, and a Standard shop restores 100 a second: 334 changed orders took 4.3 minutes of
# waiting (docs/performance.md), 50 take about 30 s, while a bulk operation over a few dozen orders
# is ready in seconds and costs 10 points. Below it, paging saves the operation's polling.
BULK_ABOVE = 50
# ... and above this many pages' worth (its `page_size`), whichever is fewer: a page of 5 orders asks
# for 807 points, so two pages are what a full bucket (2,000) serves without waiting; the seven pages
# of 33 changed orders waited 10.3 s at 100 points a second, the bulk operation over 1,392 orders 0.4 s
# (docs/performance.md, "Where the incremental run's ingestion goes").
BULK_ABOVE_PAGES = 2


def bulk_above(spec: queries.ObjectSpec) -> int:
    """Changed objects of `spec` above which a later sync reads them by a bulk operation."""
    return min(BULK_ABOVE, BULK_ABOVE_PAGES * spec.page_size)

# Objects still in quarantine that a sync reads again by id (each costs one small query).
REPLAY_LIMIT = 200
# How far before the stored cursor a later sync starts reading again. Shopify commits changes with
# some delay, so a change stamped just before the cursor may appear after it was read; re-reading a
# window and merging on the primary key loses nothing and duplicates nothing. Customers' updated_at
# filter matches whole days (NOTES.md §2), so they re-read two days.
OVERLAP = {
    "orders": timedelta(minutes=15),
    "products": timedelta(minutes=15),
    "customers": timedelta(days=2),
}

# Per table: primary key, and the parent key whose rows a reload replaces as a whole (so a line
# removed from an edited order does not linger).
KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "orders": (("workspace_id", "id"), None),
    "order_line_items": (("workspace_id", "id"), ("workspace_id", "order_id")),
    "order_shipping_lines": (("workspace_id", "id"), ("workspace_id", "order_id")),
    "order_discount_applications": (("workspace_id", "order_id", "index"), ("workspace_id", "order_id")),
    "order_refunds": (("workspace_id", "id"), ("workspace_id", "order_id")),
    "order_refund_line_items": (("workspace_id", "id"), ("workspace_id", "refund_id")),
    "products": (("workspace_id", "id"), None),
    "product_variants": (("workspace_id", "id"), ("workspace_id", "product_id")),
    "customers": (("workspace_id", "id"), None),
}
DESCRIPTIONS = {
    "orders": "Shopify orders, one row per order, money in shop and presentment currency.",
    "order_line_items": "Lines of Shopify orders (order_id), with tax lines and discount allocations as JSON.",
    "order_shipping_lines": "Shipping lines of Shopify orders (order_id).",
    "order_discount_applications": "Discounts applied to Shopify orders, keyed by (order_id, index).",
    "order_refunds": "Refunds of Shopify orders (order_id), dated by their own created_at.",
    "order_refund_line_items": "Refunded lines of Shopify refunds (refund_id, line_item_id).",
    "products": "Shopify products.",
    "product_variants": "Variants of Shopify products (product_id), with unit cost.",
    "customers": "Shopify customers.",
}


class _JsonTextIsIntended(logging.Filter):
    """dlt warns on every Arrow batch whose column types differ from the resource's hints. Ours
    differ on purpose in one way: list values arrive as JSON text for the `json` columns."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonTextIsIntended())


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _as_utc(value: datetime | str) -> datetime:
    """A stored timestamp (naive means UTC, as dlt stores it on some destinations) or ISO text, aware."""
    moment = _parse(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def targets_by_type(ids: list[str]) -> dict[str, list[str]]:
    """Global ids (`gid://shopify/Order/1`) by the object type that reads them (`orders`); others are ignored."""
    types = {spec.singular: spec.root for spec in queries.SPECS.values()}
    found: dict[str, list[str]] = {}
    for gid in ids:
        kind = gid.removeprefix("gid://shopify/").split("/")[0].lower()
        if gid.startswith("gid://shopify/") and kind in types:
            found.setdefault(types[kind], []).append(gid)
    return found


class _ShopifyFetch:
    """Fetches one workspace's objects; the client is made lazily, when a resource first runs."""

    def __init__(self, workspace: Workspace, settings: Settings, stats: SyncStats,
                 targets: dict[str, list[str]] | None = None):
        connector = workspace.connectors.get("shopify")
        if connector is None:
            raise WorkspaceError(f"workspace {workspace.id!r} has no connectors.shopify settings")
        self.workspace = workspace
        self.connector = connector
        self.api_version = connector.options.get("api_version") or settings.shopify_api_version
        self.settings = settings
        self.stats = stats
        self.targets = targets  # object type -> global ids: a targeted sync reads these only
        self._client: ShopifyClient | None = None
        self._bounds: Bounds | None = None
        self.open_records = OpenRecords(workspace.id, [spec.root for spec in queries.SPECS.values()])

    @property
    def client(self) -> ShopifyClient:
        if self._client is None:
            self._client = ShopifyClient(
                self.connector, self.api_version, self.stats, work_dir=self.settings.home / "tmp"
            )
        return self._client

    @property
    def bounds(self) -> Bounds:
        """The sane time range of this shop's records: from the day before the shop was created
        (`shop.createdAt`) to the API's now plus a day."""
        if self._bounds is None:
            created = self.client.execute(queries.SHOP_QUERY, {}, operation="ShopCreated")["shop"]["createdAt"]
            self._bounds = Bounds.at(self.stats.now, floor=_parse(created) - timedelta(days=1))
        return self._bounds

    def batches(self, spec: queries.ObjectSpec) -> Iterator[dict[str, Any]]:
        """Rows of every table of `spec`, in batches: all objects on the first sync, changed ones after.
        Objects that break the contract go to `quarantine_<root>` instead (last batch).

        The cursor only advances when every table of the object type is being loaded: a Dagster
        run that materializes some of them must not make the others skip changes.
        """
        if self.targets is not None:
            yield from self._targeted(spec, self.targets.get(spec.root, []))
            return
        cursors = dlt.current.source_state().setdefault("cursors", {})
        cursor = cursors.get(spec.root)
        splitter = rows.TableRows(spec.root, self.workspace.id)
        bounds = self.bounds  # its first request also reads the API's clock, which `now` below uses
        held = Quarantine("shopify", self.workspace.id, spec.root, self.stats.now, self.open_records)
        screener = Screener(held, bounds, self.stats)
        if cursor is None:
            self.stats.mode = "full"
            new_cursor = yield from self._bulk(spec, splitter, screener)
        else:
            search = f"updated_at:>='{_iso(_parse(cursor) - OVERLAP[spec.root])}'"
            changed = self._changed_count(spec, search)
            if changed > bulk_above(spec):
                self.stats.notes.append(f"{spec.root}: over {bulk_above(spec)} changes, read by a bulk operation")
                new_cursor = yield from self._bulk(spec, splitter, screener, search)
            elif changed == 0:  # no page to ask for (807 points for orders); the cursor stays
                new_cursor = None
            else:
                new_cursor = yield from self._pages(spec, splitter, screener, search)
        yield from self._replay(spec, splitter, screener)
        set_aside = held.rows()
        if set_aside:
            yield {quarantine.table_name(spec.root): set_aside}
        if held.fresh:  # objects already in quarantine were reported when they arrived there
            self.stats.quarantined_objects[spec.root] = len(held.fresh)
            self.stats.quarantined[spec.root] = held.summary()
        selected = set(dlt.current.source().selected_resources)
        missing = [t for t in (*TABLES[spec.root], quarantine.table_name(spec.root)) if t not in selected]
        if missing:
            self.stats.notes.append(
                f"{spec.root}: cursor kept at {cursor} because {', '.join(missing)} were not selected"
            )
        elif new_cursor is not None:
            cursors[spec.root] = new_cursor

    def _targeted(self, spec: queries.ObjectSpec, ids: list[str]) -> Iterator[dict[str, Any]]:
        """The named objects only, read by id as they are now (a webhook said they changed); the
        cursor stays where it was, for the scheduled sync. An object whose stored `updated_at` is
        newer than what the API returned (a later state loaded meanwhile) is left as stored, and
        one gone from the shop is noted in `stats.gone` (`forget` then removes its rows)."""
        if not ids:
            return
        self.stats.mode = "targeted"
        splitter = rows.TableRows(spec.root, self.workspace.id)
        held = Quarantine("shopify", self.workspace.id, spec.root, self.stats.now, self.open_records)
        screener = Screener(held, self.bounds, self.stats)
        stored = {row["id"]: row.get("updated_at")
                  for row in existing.rows_by_key(spec.root, self.workspace.id, "id", ids)}
        query, operation = queries.node_query(spec), spec.singular.capitalize() + "Replay"
        for object_id in sorted(set(ids)):
            node = self.client.execute(query, {"id": object_id}, operation=operation)[spec.singular]
            if node is None:  # deleted in the shop (its rows are removed after the load)
                self.stats.notes.append(f"{object_id}: not found (deleted), nothing loaded")
                self.stats.gone.setdefault(spec.root, []).append(object_id)
                continue
            known = stored.get(object_id)
            if known is not None and _as_utc(known) > _parse(node["updatedAt"]):
                self.stats.notes.append(f"{object_id}: a newer state is stored already, kept")
                continue
            self._complete(spec, node)
            yield screener.rows(list(rows.explode_node(node, spec)), splitter)
        set_aside = held.rows()
        if set_aside:
            yield {quarantine.table_name(spec.root): set_aside}
        if held.fresh:
            self.stats.quarantined_objects[spec.root] = len(held.fresh)
            self.stats.quarantined[spec.root] = held.summary()

    def _replay(self, spec: queries.ObjectSpec, splitter: rows.TableRows, screener: Screener):
        """Read again, by id, the objects still in quarantine that this sync did not read: fixed
        upstream (or judged by a corrected contract), they load now and their records are resolved;
        gone from the shop, their records are resolved too. At most REPLAY_LIMIT a sync."""
        held = screener.quarantine
        waiting = sorted(set(held.open_rows) - held.read)
        if len(waiting) > REPLAY_LIMIT:
            self.stats.notes.append(f"{spec.root}: {len(waiting)} quarantined objects, {REPLAY_LIMIT} read again")
        query, operation = queries.node_query(spec), spec.singular.capitalize() + "Replay"
        for object_id in waiting[:REPLAY_LIMIT]:
            try:
                node = self.client.execute(query, {"id": object_id}, operation=operation)[spec.singular]
            except ShopifyApiError as exc:  # it stays in quarantine; the sync goes on
                self.stats.notes.append(f"{object_id} could not be read again: {str(exc)[:200]}")
                continue
            if node is None:
                held.saw(object_id)
                continue
            self._complete(spec, node)
            yield screener.rows(list(rows.explode_node(node, spec)), splitter)

    def _changed_count(self, spec: queries.ObjectSpec, search: str) -> int:
        counted = self.client.execute(
            queries.count_query(spec, bulk_above(spec) + 1), {"query": search},
            operation=spec.root.capitalize() + "Count", cost=queries.COUNT_COST,
        )[f"{spec.root}Count"]
        return counted["count"]

    def _bulk(self, spec: queries.ObjectSpec, splitter: rows.TableRows, screener: Screener,
              search: str | None = None):
        """Every object (matching `search`) through one bulk operation, its JSONL parsed straight to
        Arrow tables (arrow.py): the same rows as the paging path's, many times faster. A block that
        Arrow cannot type (a quantity sent as text, say) goes through the dict rows instead, where
        the contract finds the object that broke it.

        Returns the new cursor: when the operation started, since it reads one snapshot.
        """
        operation = self.client.start_bulk(queries.bulk_query(spec, search), queries.BULK_RUN_MUTATION)
        # An empty batch hands control back to dlt, which takes items from its fetchers in turn:
        # the other object types start their bulk operations too, and Shopify runs them together.
        yield {}
        url = self.client.wait_bulk(operation, queries.BULK_POLL_QUERY)
        with self.client.bulk_file(url) as path:
            if path is not None:
                keys = {table: KEYS[table][0] for table in TABLES[spec.root]}
                arrow = ArrowTables(spec.root, self.workspace.id, keys)
                for block in blocks(path):
                    tables, error = None, None
                    try:
                        tables = arrow.split(block)
                    except ARROW_ERRORS as exc:
                        # Arrow refuses a lone surrogate escape: only the lines holding one are read by the
                        # standard library and written again storable, then the block is Arrow's again.
                        error = exc
                        block, rewritten = screener.storable_lines(block)
                        if rewritten:
                            try:
                                tables = arrow.split(block)
                                self.stats.notes.append(
                                    f"{spec.root}: {rewritten} bulk line(s) with a lone surrogate read alone")
                            except ARROW_ERRORS as again:
                                error = again
                    if tables is None:
                        self.stats.notes.append(f"{spec.root}: a bulk block read line by line ({str(error)[:120]})")
                        lines = [json.loads(line) for line in block.splitlines() if line.strip()]
                        yield screener.rows(lines, splitter)
                        continue
                    yield screener.arrow(tables, block, spec.root)
        return operation["createdAt"]

    def _pages(self, spec: queries.ObjectSpec, splitter: rows.TableRows, screener: Screener, search: str):
        """Objects matching the `updated_at` search, oldest change first. Returns the new cursor.

        An object updated again while we page moves behind our position and comes back: its first
        version is kept, and the cursor stays before its new timestamp so the next sync reads it.
        """
        query = queries.page_query(spec)
        operation = spec.root.capitalize() + "Page"
        variables: dict[str, Any] = {"first": spec.page_size, "query": search}
        seen: set[str] = set()
        newest: datetime | None = None
        hold_before: datetime | None = None
        while True:
            page = self.client.execute(query, variables, operation=operation)[spec.root]
            lines: list[dict[str, Any]] = []
            for node in page["nodes"]:
                updated = _parse(node["updatedAt"])
                if node["id"] in seen:
                    hold_before = min(hold_before or updated, updated)
                    continue
                seen.add(node["id"])
                newest = max(newest or updated, updated)
                self._complete(spec, node)
                lines.extend(rows.explode_node(node, spec))
            if lines:
                yield screener.rows(lines, splitter)
            if not page["pageInfo"]["hasNextPage"]:
                break
            variables["after"] = page["pageInfo"]["endCursor"]
        if newest is None:
            return None
        if hold_before is not None:
            newest = min(newest, hold_before - timedelta(seconds=1))
        # An object stamped in the future (a broken clock, an order "updated" in 2999: quarantined)
        # must not carry the cursor past every change still to come.
        return _iso(min(newest, self.stats.now))

    def _complete(self, spec: queries.ObjectSpec, node: dict[str, Any]) -> None:
        """Fetch the rest of any nested connection that did not fit in the page, in place."""
        for nested in spec.nested:
            connection = node.get(nested.field) or {}
            while connection.get("pageInfo", {}).get("hasNextPage"):
                more = self.client.execute(
                    queries.nested_page_query(spec, nested),
                    {"id": node["id"], "after": connection["pageInfo"]["endCursor"]},
                    operation=spec.singular.capitalize() + nested.field[0].upper() + nested.field[1:],
                )[spec.singular][nested.field]
                connection["nodes"] = connection["nodes"] + more["nodes"]
                connection["pageInfo"] = more["pageInfo"]
        refunds = node.get("refunds") or []
        if any(r["refundLineItems"]["pageInfo"]["hasNextPage"] for r in refunds):
            fuller = self.client.execute(
                queries.ORDER_REFUNDS_QUERY, {"id": node["id"]}, operation="OrderRefundLineItems"
            )["order"]["refunds"]
            by_id = {r["id"]: r["refundLineItems"] for r in fuller}
            for refund in refunds:
                items = by_id[refund["id"]]
                if items["pageInfo"]["hasNextPage"]:
                    raise ShopifyApiError(
                        f"refund {refund['id']} has more than {queries.REFUND_LINE_ITEMS_FOLLOW_UP_PAGE_SIZE} "
                        "line items; the connector cannot page them yet"
                    )
                refund["refundLineItems"] = items


def _fetcher(fetch: _ShopifyFetch, spec: queries.ObjectSpec):
    def fetch_batches() -> Iterator[dict[str, list[dict[str, Any]]]]:
        yield from fetch.batches(spec)

    return fetch_batches


def _table(parent: DltResource, table: str, file_format: str | None) -> DltResource:
    primary_key, merge_key = KEYS[table]
    hints = merge_hints(primary_key, merge_key)

    def pick(batch: dict[str, Any]) -> Iterator[Any]:
        found = batch.get(table)  # dict rows from pages, an Arrow table from a bulk operation
        if found is not None and len(found):
            yield found

    resource = dlt.transformer(
        pick,
        name=table,
        data_from=parent,
        primary_key=hints["primary_key"],
        write_disposition=hints["write_disposition"],
        columns=_merged(column_hints(table, primary_key), hints["columns"]),
        file_format=file_format,
    )
    # A new table's columns in the declared order, any other after them by name (own_load_jobs.DeclaredColumnOrder).
    resource.apply_hints(additional_table_hints={COLUMN_ORDER: list(column_hints(table, primary_key))})
    resource.__doc__ = DESCRIPTIONS[table]
    return resource


def _quarantine_table(parent: DltResource, root: str, file_format: str | None) -> DltResource:
    name = quarantine.table_name(root)

    def pick(batch: dict[str, Any]) -> Iterator[Any]:
        if batch.get(name):
            yield batch[name]

    resource = dlt.transformer(
        pick, name=name, data_from=parent, primary_key="quarantine_id",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        columns=quarantine.COLUMNS, file_format=file_format,
    )
    resource.apply_hints(additional_table_hints={COLUMN_ORDER: list(quarantine.COLUMNS)})
    resource.__doc__ = f"Shopify {root} that broke the contract, one row per broken rule (quarantine.shopify_{root})."
    return resource


def _merged(columns: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {**hints, **extra.get(name, {})} for name, hints in columns.items()}


# Each object type's rows in the raw tables: (table, which rows are the objects'), children first.
OWN_ROWS = {
    "orders": (("order_refund_line_items", ("refund_id in (select id from shopify.order_refunds "
                                            "where workspace_id = %s and order_id in ({ids}))")),
               ("order_line_items", "order_id in ({ids})"), ("order_shipping_lines", "order_id in ({ids})"),
               ("order_discount_applications", "order_id in ({ids})"), ("order_refunds", "order_id in ({ids})"),
               ("orders", "id in ({ids})")),
    "products": (("product_variants", "product_id in ({ids})"), ("products", "id in ({ids})")),
    "customers": (("customers", "id in ({ids})"),),
}


def forget(warehouse: Warehouse, workspace_id: str, gone: dict[str, list[str]]) -> dict[str, int]:
    """Remove the orders, products and customers the shop deleted, with their child rows (an order's
    lines and refunds, a product's variants), from the raw tables: a `*/delete` webhook's targeted
    sync found them gone, and the scheduled sync cannot see deletions. The next dbt build drops them
    from the marts and the daily tables of their days. Returns the objects removed per type
    (`gone`: type -> global ids, as `SyncStats.gone` holds them)."""
    removed = {root: 0 for root in OWN_ROWS}
    if not any(gone.values()):
        return removed
    with warehouse.transaction() as statements:
        present = {name for (name,) in statements.execute(
            "select table_name from information_schema.tables where table_schema = 'shopify'")}
        for root, object_ids in gone.items():
            ids = ", ".join(["%s"] * len(object_ids))
            for table, where in OWN_ROWS.get(root, ()) if object_ids else ():
                if table not in present:
                    continue
                params = [workspace_id] * (1 + where.count("workspace_id = %s")) + list(object_ids)
                found = statements.execute(f"delete from shopify.{table} where workspace_id = %s and "
                                           f"{where.format(ids=ids)} returning 1", params)
                if table == root:
                    removed[root] = len(found)
    return removed


@dlt.source(name="shopify", max_table_nesting=0)
def shopify_source(workspace: Workspace, *, settings: Settings, stats: SyncStats,
                   targets: list[str] | None = None) -> list[DltResource]:
    """Shopify tables of one workspace. Reads no secrets and makes no calls until extraction.

    `targets` (global ids of orders, customers, products) makes it a targeted sync: those objects
    only, read by id, cursors untouched (the webhook sensor's runs, docs/webhooks.md).
    """
    fetch = _ShopifyFetch(workspace, settings, stats, None if targets is None else targets_by_type(targets))
    file_format = settings.warehouse.load_file_format
    resources: list[DltResource] = []
    for spec in queries.SPECS.values():
        parent = dlt.resource(_fetcher(fetch, spec), name=f"_{spec.root}_fetch", selected=False)
        resources.extend(_table(parent, table, file_format) for table in TABLES[spec.root])
        resources.append(_quarantine_table(parent, spec.root, file_format))
    return resources
