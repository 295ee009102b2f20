"""The sandbox store's pages: the rows a brute-force filter and sort give, at a cost that does not
grow with how deep in a list the page lies (the fake APIs page every list through `query`)."""

from __future__ import annotations

import itertools
import random

import pytest

from pipelines.sandbox.core.store import SandboxStore

WORKSPACE = "w1"
COUNT = 600


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SandboxStore:
    store = SandboxStore(tmp_path_factory.mktemp("store") / "sandbox.sqlite")
    chance = random.Random(7)
    rows = []
    for number in range(COUNT):
        created = chance.randrange(1000, 1300)  # many objects share a second: ties broken by id
        rows.append((WORKSPACE, "stripe", "invoice", f"in_{chance.randrange(10**6):06d}_{number}", created,
                     created + chance.randrange(0, 500), chance.random() < 0.1, {"n": number}))
    rows.append(("w2", "stripe", "invoice", "in_other", 1100, 1100, False, {}))  # another workspace's
    store.put_many(rows)
    return store


def _expected(store: SandboxStore, order_by, descending, after, created, updated, include_deleted, limit):
    everything = store.conn.execute(
        "select id, created, updated, deleted from objects where workspace = ? and kind = 'invoice'", (WORKSPACE,)
    ).fetchall()
    ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}

    def keep(row) -> bool:
        if row["deleted"] and not include_deleted:
            return False
        for column, bounds in (("created", created), ("updated", updated)):
            if any(not ops[op](row[column], value) for op, value in (bounds or {}).items()):
                return False
        if after is not None:
            key = (row[order_by], row["id"])
            return key < after if descending else key > after
        return True

    ordered = sorted((row for row in everything if keep(row)), key=lambda row: (row[order_by], row["id"]),
                     reverse=descending)
    return [row["id"] for row in ordered[:limit]]


BOUNDS = [None, {"gte": 1100}, {"lt": 1200}, {"gte": 1050, "lt": 1250}, {"gt": 1149, "lte": 1150},
          {"lte": 1210, "lt": 1230}, {"gt": 1020, "gte": 1040, "lt": 1290, "lte": 1280}]


@pytest.mark.parametrize("order_by", ["created", "updated"])
@pytest.mark.parametrize("descending", [True, False])
def test_pages_are_the_brute_force_answer(store, order_by, descending):
    """Every cursor position (before, inside and after each window) with every mix of bounds on
    either column gives the rows a plain filter and sort gives."""
    chance = random.Random(11)
    ids = [row["id"] for row in store.conn.execute("select id from objects where workspace = ?", (WORKSPACE,))]
    cursors = [None, (900, "z"), (1500, ""), (1150, "in_5"), (1100, "")]
    for object_id in chance.sample(ids, 12):
        row = store.conn.execute("select created, updated from objects where id = ?", (object_id,)).fetchone()
        cursors.append((row[order_by], object_id))
    checked = 0
    for after, created, updated, include_deleted in itertools.product(cursors, BOUNDS, BOUNDS[:3], (False, True)):
        limit = chance.choice([1, 7, 101])
        got = [row.id for row in store.query(WORKSPACE, "stripe", "invoice", order_by=order_by, descending=descending,
                                             after=after, created=created, updated=updated,
                                             include_deleted=include_deleted, limit=limit)]
        assert got == _expected(store, order_by, descending, after, created, updated, include_deleted, limit), (
            after, created, updated, include_deleted, limit)
        checked += 1
    assert checked == len(cursors) * len(BOUNDS) * 3 * 2


def _steps(store: SandboxStore, **query) -> int:
    """SQLite virtual machine steps of one query: a deterministic measure of the rows it visited."""
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    store.conn.set_progress_handler(count, 1)
    try:
        store.query(WORKSPACE, "stripe", "invoice", limit=20, **query)
    finally:
        store.conn.set_progress_handler(None, 1)
    return counted[0]


@pytest.mark.parametrize("descending", [True, False])
def test_a_deep_page_in_a_window_costs_what_the_first_does(store, descending):
    """A page of a `created` window (Stripe's lists, feed.py's windows) starts at its cursor: before,
    SQLite ranged over the window's end and stepped over every row between it and the cursor."""
    window = {"gte": 1000, "lt": 1300}
    walked = store.query(WORKSPACE, "stripe", "invoice", descending=descending, created=window)
    deep = walked[int(len(walked) * 0.9)]
    first = _steps(store, descending=descending, created=window)
    deeper = _steps(store, descending=descending, created=window, after=(deep.created, deep.id))
    assert len(walked) > 500
    assert deeper < 2 * first, (first, deeper)
