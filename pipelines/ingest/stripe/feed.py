"""What one Stripe sync reads, and the rows it produces for each raw table.

A first sync lists every object by `created` windows. Later syncs read `/v1/events` after the
stored cursor and upsert each event's `data.object`, so their cost follows the number of changes,
not the size of the account. docs/connectors/stripe.md explains the choices.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

from pipelines.ingest import existing, quarantine
from pipelines.ingest.pipeline import SyncStats
from pipelines.ingest.quarantine import Bounds, OpenRecords, Quarantine
from pipelines.ingest.stripe.contract import object_time, violations
from pipelines.ingest.stripe.client import PAGE_LIMIT, StripeApiError, StripeClient, ints_fit
from pipelines.ingest.stripe.history import Version, merge_versions
from pipelines.ingest.stripe.shapes import discount_objects, flatten, to_pinned_shape

logger = logging.getLogger(__name__)

EPOCH = 1262304000  # 2010-01-01: where the doubling window walk stops; one window open below reads the rest
FIRST_WINDOW = 90 * 86400
EVENT_RETENTION = 30 * 86400
# A full sync reads the retained events by windows of a day at first (a large account has thousands a day),
# several at once, down to a day past the retention; one window open below reads anything older.
EVENT_WINDOW = 86400
REPLAY_LIMIT = 200  # objects still in quarantine that a sync retrieves again (one request each)
WINDOW_WORKERS = 4  # windows of a list read at once: enough to keep the paced request rate busy
BATCH_ROWS = 5000  # rows of one table handed to dlt at once (see `coalesced`)

# List endpoints of a full sync: table, path, extra parameters.
LISTS = (
    ("customers", "/v1/customers", {}),
    ("products", "/v1/products", {}),
    ("prices", "/v1/prices", {}),
    ("coupons", "/v1/coupons", {}),
    # status=all: without it Stripe leaves canceled subscriptions out.
    ("subscriptions", "/v1/subscriptions", {"status": "all", "expand[]": ["data.discounts"]}),
    ("invoices", "/v1/invoices", {}),
)
# Event `data.object.object` -> the table it updates.
OBJECT_TABLES = {
    "customer": "customers",
    "product": "products",
    "price": "prices",
    "coupon": "coupons",
    "subscription": "subscriptions",
    "invoice": "invoices",
    "discount": "discounts",
}


_READER_DONE = object()


class _Tiles:
    """Consecutive `created` windows covering all time, newest first, handed to several readers.

    The first window, `[top - first, ∞)` (`first`: FIRST_WINDOW by default), is open above so
    objects created during the sync are not missed; each next one ends where the previous began. A
    window that held less than a page doubles the span of the windows handed out after it, so sparse
    history costs few requests. The walk stops at `floor` (EPOCH by default), and a last window,
    `(-∞, floor)`, reads whatever is older: an account (or an import) with objects dated before 2010
    loses none of them. Each window comes with its rank: 0 for the newest, then 1, 2, ...
    """

    def __init__(self, top: int, first: int = FIRST_WINDOW, floor: int = EPOCH):
        self._lock = threading.Lock()
        self._span = first
        self._upper: int | None = None
        self._lower: int | None = top - first
        self._floor = floor
        self._rank = 0
        self._exhausted = False

    def take(self) -> tuple[int, dict[str, int]] | None:
        with self._lock:
            if self._exhausted:
                return None
            rank, self._rank = self._rank, self._rank + 1
            if self._lower is None:  # past the floor: everything older, in one window open below
                self._exhausted = True
                return rank, {"created[lt]": self._floor}
            window = {"created[gte]": max(self._lower, self._floor)}
            if self._upper is not None:
                window["created[lt]"] = self._upper
            if self._lower <= self._floor:
                self._lower = None
            else:
                self._upper, self._lower = self._lower, self._lower - self._span
            return rank, window

    def done(self, count: int) -> None:
        if count < PAGE_LIMIT:
            with self._lock:
                self._span *= 2


def _in_threads(read: Callable[[Callable[[object], bool]], None], workers: int) -> Iterator[Any]:
    """What `read(put)` puts, running in `workers` threads, yielded here as it arrives.

    The readers fetch and parse the next pages while this thread turns the previous ones into rows;
    a bounded queue keeps at most 2 pages per reader in memory. `put` returns False once the
    consumer has stopped (the readers then return); a reader's exception is raised here.
    """
    items: queue.Queue = queue.Queue(maxsize=2 * workers)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            read(put)
            put(_READER_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    threads = [threading.Thread(target=run, name=f"stripe-reader-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        finished = 0
        while finished < len(threads):
            item = items.get()
            if item is _READER_DONE:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@dataclass
class Batch:
    """Rows for one raw table; the feed resource yields these and each table resource keeps its own."""

    table: str
    rows: list[dict[str, Any]]


def coalesced(batches: Iterable[Batch], rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """The same rows, in order, in fewer and larger batches: each table's rows are held until `rows`
    wait, the rest come at the end. dlt's work per item (its schema hints, an Arrow table, a
    parquet write) is then paid per few thousand rows rather than per page."""
    held: dict[str, list[dict[str, Any]]] = {}
    for batch in batches:
        waiting = held.setdefault(batch.table, [])
        waiting.extend(batch.rows)
        if len(waiting) >= rows:
            yield Batch(batch.table, held.pop(batch.table))
    for table, waiting in held.items():
        if waiting:
            yield Batch(table, waiting)


class Snapshot(NamedTuple):
    """An object as an event (or a retrieval) showed it."""

    obj: dict[str, Any]  # in the pinned shape
    deleted_at: int | None
    raw: dict[str, Any]  # as received
    # It came in a page holding no whole number beyond 64 bits (client.Page): the contract skips that
    # walk over it and its embedded children.
    ints_fit: bool = False


def fit_with(ints_fit: bool, raw: dict[str, Any], children: str) -> bool:
    """Whether an object that came in a page holding no whole number beyond 64 bits (`ints_fit`) has
    no such number in its embedded `children` (`items`, `lines`) either: none was paged apart."""
    return ints_fit and not (raw.get(children) or {}).get("has_more")


@dataclass
class Changes:
    """The newest snapshot of every object the events of one sync touched, plus subscription versions."""

    # table -> object id -> its newest snapshot
    latest: dict[str, dict[str, Snapshot]] = field(default_factory=lambda: defaultdict(dict))
    versions: dict[str, list[tuple[int, Snapshot]]] = field(
        default_factory=lambda: defaultdict(list))  # subscription id -> (event time, snapshot)


class StripeFeed:
    """One sync of one workspace's Stripe account.

    Args:
        client: the account's API client.
        workspace_id: stamped on every row.
        stats: the sync's counters and notes.
    """

    def __init__(self, client: StripeClient, workspace_id: str, stats: SyncStats):
        self.client = client
        self.workspace_id = workspace_id
        self.stats = stats
        self.cursor: dict[str, Any] | None = None  # the event cursor after this sync
        self.quarantines: dict[str, Quarantine] = {}
        self.open_records = OpenRecords(workspace_id, [table for table, _, _ in LISTS])
        self._bounds: Bounds | None = None

    # -- entry point ---------------------------------------------------------------------------

    def run(self, cursor: dict[str, Any] | None, targets: list[str] | None = None) -> Iterator[Batch]:
        """Yield every batch of the sync; afterwards `self.cursor` holds the cursor to store.
        With `targets` (event ids), only those events and their objects (`targeted`).

        Objects that break the contract (contract.py) come last, as `quarantine_<table>` batches.
        """
        if targets is not None:
            yield from self.targeted(targets)
        elif cursor is None or not cursor.get("id"):
            yield from self.full(resync=False)
        elif not self._cursor_alive(cursor):
            note = (f"event cursor {cursor['id']} (created {cursor.get('created')}) is older than Stripe's "
                    "30-day event retention: full resync")
            logger.warning("workspace %s: %s", self.workspace_id, note)
            self.stats.notes.append(note)
            yield from self.full(resync=True)
        else:
            yield from self.incremental(cursor)
        if targets is None:
            yield from self._replay()
        for table, rows in quarantine.batches(self.quarantines.values()):
            yield Batch(table, rows)
        for table, held in self.quarantines.items():
            if held.fresh:  # objects already in quarantine were reported when they arrived there
                self.stats.quarantined_objects[table] = len(held.fresh)
                self.stats.quarantined[table] = held.summary()

    # -- the contract --------------------------------------------------------------------------

    def _quarantine(self, table: str) -> Quarantine:
        held = self.quarantines.get(table)
        if held is None:
            held = self.quarantines[table] = Quarantine("stripe", self.workspace_id, table, self.stats.now,
                                                        self.open_records)
        return held

    def _retrieve(self, table: str, object_id: str) -> dict[str, Any] | None:
        """One object as Stripe holds it now (None when deleted or gone), expanded as its list is."""
        path, params = next((path, params) for name, path, params in LISTS if name == table)
        # A list expands `data.<field>`, a retrieve `<field>`.
        expand = [name.removeprefix("data.") for name in params.get("expand[]", [])]
        try:
            obj = self.client.get(f"{path}/{object_id}", {"expand[]": expand} if expand else None)
        except StripeApiError as exc:
            if exc.status != 404:
                raise
            return None
        return None if obj.get("deleted") else obj

    def _replay(self) -> Iterator[Batch]:
        """Retrieve again the objects still in quarantine that this sync did not read: fixed
        upstream (or judged by a corrected contract), they load now and their records are resolved;
        deleted or gone, their records are resolved too. At most REPLAY_LIMIT a sync."""
        versions: dict[str, list[Version]] = defaultdict(list)
        budget = REPLAY_LIMIT
        for table, path, params in LISTS:
            held = self._quarantine(table)
            waiting = sorted(set(held.open_rows) - held.read)
            for object_id in waiting[:budget]:
                obj = self._retrieve(table, object_id)
                if obj is None:
                    held.saw(object_id)  # nothing left to load
                    continue
                yield from self._snapshot_batches(table, [obj], versions, int(self.stats.now.timestamp()))
            if len(waiting) > budget:
                self.stats.notes.append(f"{table}: {len(waiting)} quarantined objects, {budget} read again")
            budget = max(0, budget - len(waiting))
        yield from self._history(versions)

    @property
    def bounds(self) -> Bounds:
        """Sane times: up to the API's now (its `Date` header) plus a day."""
        if self._bounds is None:
            self._bounds = Bounds.at(self.stats.now)
        return self._bounds

    def _accepted(self, table: str, raw: dict[str, Any], row: dict[str, Any],
                  children: tuple[str, list[dict[str, Any]]] | None = None, *, ints_fit: bool = False) -> bool:
        """Whether an object meets the contract; if not, it is quarantined (with `raw`, as received).
        `ints_fit`: every whole number of the object and its children came in a page that holds none
        beyond 64 bits (client.Page)."""
        held = self._quarantine(table)
        found = violations(table, row, children, self.bounds, ints_fit=ints_fit)
        object_id = str(row.get("id") or raw.get("id") or "?")
        if found:
            held.add(object_id, found, raw, object_time(row, self.bounds))
            return False
        held.saw(object_id)
        return True

    def _cursor_alive(self, cursor: dict[str, Any]) -> bool:
        """Whether Stripe still serves the cursor event, so every later event is still listed."""
        try:
            self.client.get(f"/v1/events/{cursor['id']}")
        except StripeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- full sync -----------------------------------------------------------------------------

    def full(self, *, resync: bool) -> Iterator[Batch]:
        """List everything by `created` windows; remember the newest event first as the cursor.

        Stripe lists no deleted object, so the objects that the retained events (30 days) say were
        deleted are loaded from those events, flagged deleted: a customer deleted last week keeps
        its row, as one deleted after the first sync does.
        """
        self.stats.mode = "full"
        first = self.client.get("/v1/events", {"limit": PAGE_LIMIT})
        newest = first.get("data") or []
        self.cursor = {"id": newest[0]["id"], "created": newest[0]["created"]} if newest else None
        # Any change after the newest event would have its own event, so listed objects are in
        # their state as of that event; the next sync replays whatever happens from here on.
        as_of = newest[0]["created"] if newest else int(time.time())
        replayed: list[dict[str, Any]] = []  # subscription events, newest first
        deletions: dict[str, dict[str, tuple[dict[str, Any], int]]] = defaultdict(dict)  # table -> id -> (obj, when)
        # The retained events: the first page when it holds them all, else by `created` windows, several
        # at once (one walk of a large account's ≈ 400,000 took minutes, paced by its round trips); each
        # page's rows go as it arrives. Their order matters below (the newest deletion of an object wins,
        # a resync replays in order), so the events that count there are kept with their place in the one
        # walk newest first: their window's rank, their page's within the window, their own within the page.
        counted: list[tuple[tuple[int, int, int], str, dict[str, Any]]] = []
        floor = max(as_of - EVENT_RETENTION - EVENT_WINDOW, EPOCH)
        pages = self._windows("/v1/events", {}, top=as_of, first=EVENT_WINDOW, floor=floor) \
            if first.get("has_more") else [((0, 0), newest)] if newest else []
        for (rank, number), page in pages:
            yield Batch("events", [self._event_row(event) for event in page])
            for position, event in enumerate(page):
                table = OBJECT_TABLES.get(((event.get("data") or {}).get("object") or {}).get("object"))
                if table and ((table == "subscriptions" and resync) or event["type"].endswith(".deleted")):
                    counted.append(((rank, number, position), table, event))
        for _, table, event in sorted(counted, key=itemgetter(0)):
            obj = event["data"]["object"]
            if table == "subscriptions" and resync:  # they narrow the gap the expired cursor left
                replayed.append(event)
            elif event["type"].endswith(".deleted") and obj.get("id") not in deletions[table]:
                deletions[table][obj["id"]] = (to_pinned_shape(obj), event["created"])
        versions: dict[str, list[Version]] = defaultdict(list)
        for table, path, params in LISTS:
            listed: set[str] = set()  # a resync's tombstones need every id; a first sync only the deleted ones'
            deleted = deletions.get(table, {})
            for _, page in self._windows(path, params, top=as_of):
                ids = map(itemgetter("id"), page)
                listed.update(ids if resync else filter(deleted.__contains__, ids))
                yield from self._snapshot_batches(table, page, versions, as_of)
                if not resync and len(versions) >= BATCH_ROWS:
                    # A first sync's subscriptions each have their one version, from this listing: their
                    # history is complete, so it goes now rather than every subscription being held
                    # to the end (a resync adds the retained events' versions to them below).
                    yield from self._history(versions)
                    versions.clear()
            gone = {object_id: found for object_id, found in deletions.get(table, {}).items() if object_id not in listed}
            if gone:
                drop = ("lines",) if table == "invoices" else ()
                yield Batch(table, [self._row(obj, drop=drop, deleted_at=when) for obj, when in gone.values()])
            if resync:
                yield from self._tombstones(table, listed | set(gone), as_of)
        for table in set(deletions) - {table for table, _, _ in LISTS}:  # discounts: embedded, never listed
            yield Batch(table, [self._row(obj, deleted_at=when) for obj, when in deletions[table].values()])
        listed_items = {sub_id: found[0].items for sub_id, found in versions.items()}
        for event in reversed(replayed):
            raw = event["data"]["object"]
            obj = to_pinned_shape(raw)
            row, items = self._subscription_row(obj), self._item_rows(obj, known=listed_items.get(obj["id"]))
            if self._accepted("subscriptions", raw, row, ("subscription_items", items)):
                versions[obj["id"]].append(Version(event["created"], row, items))
        for sub_versions in versions.values():
            sub_versions.sort(key=lambda v: v.valid_from)  # stable: the event beats the listing on a tie
        yield from self._history(versions)

    def _windows(self, path: str, params: dict[str, Any], top: int, first: int = FIRST_WINDOW,
                 floor: int = EPOCH) -> Iterator[tuple[tuple[int, int], list[dict[str, Any]]]]:
        """Pages of a list by `created` windows, WINDOW_WORKERS windows at a time (see `_Tiles`), each
        with its place: (its window's rank, newest first, and its own within the window, from 0).

        Within a window pages follow each other (`starting_after`); windows are independent, so
        several are read at once, and the client's pacing keeps the account under its rate limit.
        Pages come out in no fixed order.
        """
        tiles = _Tiles(top, first, floor)

        def read_windows(put: Callable[[object], bool]) -> None:
            while (taken := tiles.take()) is not None:
                rank, window = taken
                count = 0
                for number, page in enumerate(self.client.pages(path, {**params, **window})):
                    count += len(page)
                    if not put(((rank, number), page)):
                        return
                tiles.done(count)

        return _in_threads(read_windows, WINDOW_WORKERS)

    def _snapshot_batches(
        self, table: str, page: list[dict[str, Any]], versions: dict[str, list[Version]], as_of: int
    ) -> Iterator[Batch]:
        # Children paged past the embedded ones (`has_more`) came in other pages: those objects are checked whole.
        fit = ints_fit(page)
        discounts = [(d, self._row(d)) for obj in page for d in discount_objects(obj)]
        discounts = [row for d, row in discounts if self._accepted("discounts", d, row, ints_fit=fit)]
        if discounts:
            yield Batch("discounts", discounts)
        if table == "subscriptions":
            subs, items = [], []
            for raw in page:
                obj = to_pinned_shape(raw)
                row, item_rows = self._subscription_row(obj), self._item_rows(obj, complete=True)
                if not self._accepted(table, raw, row, ("subscription_items", item_rows),
                                      ints_fit=fit_with(fit, raw, "items")):
                    continue
                subs.append(row)
                items += item_rows
                valid_from = max(as_of, obj["created"])
                versions[obj["id"]].append(Version(valid_from, dict(row), [dict(i) for i in item_rows]))
            yield Batch("subscriptions", subs)
            yield Batch("subscription_items", items)
        elif table == "invoices":
            invoices, lines = [], []
            for raw in page:
                obj = to_pinned_shape(raw)
                row, line_rows = self._row(obj, drop=("lines",)), self._line_rows(obj)
                if self._accepted(table, raw, row, ("invoice_lines", line_rows), ints_fit=fit_with(fit, raw, "lines")):
                    invoices.append(row)
                    lines += line_rows
            yield Batch("invoices", invoices)
            yield Batch("invoice_lines", lines)
        else:
            rows = [(raw, self._row(to_pinned_shape(raw))) for raw in page]
            yield Batch(table, [row for raw, row in rows if self._accepted(table, raw, row, ints_fit=fit)])

    def _tombstones(self, table: str, known: set[str], as_of: int) -> Iterator[Batch]:
        """Mark rows deleted that a resync no longer lists (nor finds deleted by a retained event):
        they were deleted while the cursor was stale, at a time no event tells any more."""
        gone = existing.live_ids(table, self.workspace_id) - known
        if not gone:
            return
        rows = existing.rows_by_key(table, self.workspace_id, "id", gone)
        for row in rows:
            row.update(deleted=True, deleted_at=as_of)
        self.stats.notes.append(f"{len(rows)} {table} no longer listed by Stripe: marked deleted")
        yield Batch(table, rows)

    # -- incremental sync ----------------------------------------------------------------------

    def incremental(self, cursor: dict[str, Any]) -> Iterator[Batch]:
        """Replay the events after the cursor: newest snapshot per object, and every subscription version."""
        self.stats.mode = "incremental"
        self.cursor = dict(cursor)
        changes = Changes()
        for page in self.client.pages_after("/v1/events", cursor["id"]):
            yield Batch("events", [self._event_row(event) for event in page])
            fit = ints_fit(page)
            for event in page:
                self._collect(event, changes, ints_fit=fit)
            self.cursor = {"id": page[-1]["id"], "created": page[-1]["created"]}
        yield from self._changed_objects(changes)

    def targeted(self, event_ids: list[str]) -> Iterator[Batch]:
        """The named events only (a webhook announced them), retrieved from the API rather than taken
        from the webhook: each event's subscription version goes into the history, and each object
        they touched is retrieved by id, as it is now, for its current row. Arrival order does not
        matter: events are applied oldest first, and the current rows are the API's latest state.
        The event cursor stays where it was: the scheduled sync reads these events again, harmlessly."""
        self.stats.mode = "targeted"
        events = []
        for event_id in sorted(set(event_ids)):
            try:
                events.append(self.client.get(f"/v1/events/{event_id}"))
            except StripeApiError as exc:
                if exc.status != 404:
                    raise
                self.stats.notes.append(f"{event_id}: no longer served by Stripe, left to the scheduled sync")
        events.sort(key=lambda event: (event["created"], event["id"]))
        if not events:
            return
        yield Batch("events", [self._event_row(event) for event in events])
        changes = Changes()
        for event in events:
            self._collect(event, changes)
        for table, objects in changes.latest.items():
            if table not in {name for name, _, _ in LISTS}:
                continue  # discounts: immutable, as the event showed them
            for object_id, snapshot in list(objects.items()):
                if snapshot.deleted_at is not None:
                    continue  # the deletion the event recorded
                current = self._retrieve(table, object_id)
                if current is not None:
                    objects[object_id] = Snapshot(to_pinned_shape(current), None, current)
        yield from self._changed_objects(changes)

    def _collect(self, event: dict[str, Any], changes: Changes, *, ints_fit: bool = False) -> None:
        """The event's object (and the discounts it embeds) as the newest snapshot of each, and a
        subscription's as a version. `ints_fit`: the event came in a page holding no whole number
        beyond 64 bits."""
        raw = (event.get("data") or {}).get("object") or {}
        table = OBJECT_TABLES.get(raw.get("object"))
        if table is None:  # charges, invoice items, ...: kept in the events table only
            return
        for discount in discount_objects(raw):
            changes.latest["discounts"][discount["id"]] = Snapshot(discount, None, discount, ints_fit)
        obj = to_pinned_shape(raw)
        # `customer.subscription.deleted` means canceled: the subscription stays, with its status.
        deleted = event["type"].endswith(".deleted") and table != "subscriptions"
        snapshot = Snapshot(obj, event["created"] if deleted else None, raw, ints_fit)
        changes.latest[table][obj["id"]] = snapshot
        if table == "subscriptions":
            changes.versions[obj["id"]].append((event["created"], snapshot))

    def _changed_objects(self, changes: Changes) -> Iterator[Batch]:
        # Items beyond the first 10 are paged once per subscription; its versions share them.
        full_items: dict[str, list[dict[str, Any]]] = {}
        for table, objects in changes.latest.items():
            if table == "subscriptions":
                subs, items = [], []
                for obj, _, raw, fit in objects.values():
                    full_items[obj["id"]] = self._item_rows(obj, complete=True)
                    row = self._subscription_row(obj)
                    if self._accepted(table, raw, row, ("subscription_items", full_items[obj["id"]]),
                                      ints_fit=fit_with(fit, raw, "items")):
                        subs.append(row)
                        items += full_items[obj["id"]]
                yield Batch("subscriptions", subs)
                yield Batch("subscription_items", items)
            elif table == "invoices":
                invoices, lines = [], []
                for obj, gone, raw, fit in objects.values():
                    row = self._row(obj, drop=("lines",), deleted_at=gone)
                    line_rows = self._line_rows(obj) if gone is None else []
                    # A deletion (of a draft) is recorded whatever the object looked like.
                    if gone is not None or self._accepted(table, raw, row, ("invoice_lines", line_rows),
                                                          ints_fit=fit_with(fit, raw, "lines")):
                        invoices.append(row)
                        lines += line_rows
                yield Batch("invoices", invoices)
                yield Batch("invoice_lines", lines)
            else:
                rows = [(snapshot, self._row(snapshot.obj, deleted_at=snapshot.deleted_at))
                        for snapshot in objects.values()]
                yield Batch(table, [row for snapshot, row in rows if snapshot.deleted_at is not None
                                    or self._accepted(table, snapshot.raw, row, ints_fit=snapshot.ints_fit)])
        yield from self._missing_discounts(changes)
        versions: dict[str, list[Version]] = {}
        for sub_id, snapshots in changes.versions.items():
            for created, (obj, _, raw, fit) in snapshots:
                row, items = self._subscription_row(obj), self._item_rows(obj, known=full_items.get(sub_id))
                if self._accepted("subscriptions", raw, row, ("subscription_items", items),
                                  ints_fit=fit_with(fit, raw, "items")):
                    versions.setdefault(sub_id, []).append(Version(created, row, items))
        yield from self._history(versions)

    def _missing_discounts(self, changes: Changes) -> Iterator[Batch]:
        """Fetch discounts that subscriptions reference by id only (events never expand them).

        A discount never changes once created, so one fetch per discount is enough.
        """
        wanted: dict[str, str] = {}
        for obj, *_ in changes.latest.get("subscriptions", {}).values():
            for discount_id in obj.get("discounts") or []:
                if discount_id not in changes.latest["discounts"]:
                    wanted[discount_id] = obj["id"]
        known = {row["id"] for row in existing.rows_by_key("discounts", self.workspace_id, "id", wanted)}
        fetched = []
        for sub_id in sorted({sub for discount_id, sub in wanted.items() if discount_id not in known}):
            try:
                sub = self.client.get(f"/v1/subscriptions/{sub_id}", {"expand[]": ["discounts"]})
            except StripeApiError as exc:
                if exc.status != 404:
                    raise
                continue
            fetched += [self._row(d) for d in discount_objects(sub)]
        if fetched:
            yield Batch("discounts", fetched)

    # -- history -------------------------------------------------------------------------------

    def _history(self, versions: dict[str, list[Version]]) -> Iterator[Batch]:
        """Load new subscription versions and re-date the stored ones they follow."""
        if not versions:
            return
        stored: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in existing.rows_by_key("subscription_history", self.workspace_id, "id", versions):
            stored[row["id"]].append(row)
        history, items = [], []
        for sub_id, new in versions.items():
            changed, added = merge_versions(stored.get(sub_id, []), new)
            history += changed
            for version in added:
                history.append(version.row)
                items += version.items
        yield Batch("subscription_history", history)
        yield Batch("subscription_item_history", items)

    # -- rows ----------------------------------------------------------------------------------

    def _row(self, obj: dict[str, Any], *, drop: tuple[str, ...] = (), deleted_at: int | None = None) -> dict[str, Any]:
        row = flatten(obj, drop=drop)
        row.update(workspace_id=self.workspace_id, deleted=deleted_at is not None, deleted_at=deleted_at)
        return row

    def _subscription_row(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self._row(obj, drop=("items",))

    def _item_rows(
        self, sub: dict[str, Any], *, complete: bool = False, known: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a subscription's items; `complete` pages past the embedded 10, `known` reuses a paging."""
        embedded = sub.get("items") or {}
        if known is not None and embedded.get("has_more"):
            return [dict(row) for row in known]
        items = embedded.get("data") or []
        if complete and embedded.get("has_more"):
            items = [to_pinned_shape(i) for i in self.client.rest_of_list(
                embedded, "/v1/subscription_items", {"subscription": sub["id"]})]
        rows = []
        for item in items:
            row = flatten({**item, "subscription": sub["id"]})
            row["workspace_id"] = self.workspace_id
            rows.append(row)
        return rows

    def _line_rows(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        lines = invoice.get("lines") or {}
        data = lines.get("data") or []
        if lines.get("has_more"):
            try:
                data = self.client.rest_of_list(lines, f"/v1/invoices/{invoice['id']}/lines", {})
            except StripeApiError as exc:
                if exc.status != 404:  # a draft deleted since the event: keep what the event had
                    raise
        rows = []
        for line in data:
            row = flatten(to_pinned_shape({**line, "invoice": invoice["id"]}))
            row["workspace_id"] = self.workspace_id
            rows.append(row)
        return rows

    def _event_row(self, event: dict[str, Any]) -> dict[str, Any]:
        """An event as received (its `data` stays in the event's own API version, as JSON)."""
        obj = (event.get("data") or {}).get("object") or {}
        row = flatten(event, drop=("data",))
        row.update(workspace_id=self.workspace_id, object_id=obj.get("id"), object_type=obj.get("object"),
                   data=event.get("data"))
        return row
