"""Text no warehouse can store does not stop a sync: lone surrogates become U+FFFD, NUL characters go,
in keys as in values, and both are counted; everything else loads exactly as served.

A JSON string may hold a lone surrogate escape (`"\\ud800"` without its low half): valid JSON, but no
Unicode character, so no UTF-8 text holds it. orjson refused Stripe's page, Arrow refused Shopify's
bulk block, and the line-by-line and page paths passed the code point on to pyarrow and psycopg2,
which refused it: the whole sync failed. A NUL character in a key of a JSON column (Stripe's
metadata) was kept, and Postgres refuses it in JSON.

The sandbox serves the fixture over HTTP (its JSON writer escapes every character beyond U+FFFF as a
surrogate pair, which must come back as that character): a Shopify shop's first sync (a bulk
operation) and its second (pages), and Stripe accounts, on DuckDB and Postgres.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from pipelines.ingest.sync import sync
from pipelines.sandbox.server import build_store
from pipelines.workspaces import load_workspaces
from tests.integration.test_postgres_load_values import customer, loaded_order, order
from tests.scenario import ScenarioWarehouse, serving

R = "\ufffd"
# (served, stored, lone surrogates in it). A str here holds code points: "\ud83d\ude00" would be two
# lone surrogates, while the JSON escape pair (how the sandbox serves "😀") is one character.
TEXTS = [
    ("\ud800", R, 1),
    ("a\udc00b", f"a{R}b", 1),
    ("end \udbff", f"end {R}", 1),
    ("\ude00\ud83d low before high", f"{R}{R} low before high", 2),
    ("\ud83d😀 a high one before a pair", f"{R}😀 a high one before a pair", 1),
    ("😀 non-BMP 𝄞 and é, 中文", "😀 non-BMP 𝄞 and é, 中文", 0),
    ("\ufffd already", "\ufffd already", 0),
    ("plain", "plain", 0),
]
SERVED, STORED = [t[0] for t in TEXTS], [t[1] for t in TEXTS]
LONE = sum(t[2] for t in TEXTS)  # lone surrogates in one list of the texts
CLOCK_FIRST, CLOCK_SECOND = "2026-05-20T00:00:00Z", "2026-05-25T00:00:00Z"


def stripe(customers: list[dict]) -> dict:
    return {"customers": customers, "products": [], "prices": [], "coupons": [], "discounts": [],
            "subscriptions": [], "invoices": [], "events": []}


def fixture(clock: str, orders: list[dict]) -> dict:
    """`text-saas`: a customer per text, in its name, a metadata value and key, and a locale.
    `keys-saas`: NUL characters in metadata keys only (no lone surrogate in its page)."""
    texts = [customer(i, text) for i, text in enumerate(SERVED)]
    keys = [{**customer(0, "Ana"), "metadata": {"k\x00ey": "value", "plain": "p"}},
            {**customer(1, "Bo"), "metadata": {"\x00": "x", "a": "\x00"}}]
    return {"clock": clock, "workspaces": {
        "text-store": {"name": "Text Store", "currency": "USD", "timezone": "UTC",
                       "shopify": {"orders": orders, "products": [], "customers": []}},
        "text-saas": {"name": "Text SaaS", "currency": "USD", "timezone": "UTC", "stripe": stripe(texts)},
        "keys-saas": {"name": "Keys SaaS", "currency": "USD", "timezone": "UTC", "stripe": stripe(keys)},
    }}


def sync_phase(path: Path, home: Path, warehouse_url: str | None, monkeypatch) -> tuple[ScenarioWarehouse, dict]:
    """Serve the fixture at `path` and sync each workspace: its sync's stats, or the error that stopped it."""
    home.mkdir(parents=True, exist_ok=True)
    store = build_store(home / "sandbox.sqlite", fixtures=path)
    results = {}
    with serving(store, json.loads(path.read_text())["workspaces"], home, warehouse_url, monkeypatch) as (settings, _):
        for workspace in load_workspaces(settings.workspaces_file):
            [source] = workspace.connectors
            try:
                results[workspace.id] = sync(source, workspace, settings).stats
            except Exception as exc:  # noqa: BLE001 (each test shows its own workspace's error)
                results[workspace.id] = exc
    return ScenarioWarehouse(settings), results


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def synced(request, tmp_path_factory) -> dict:
    """The first sync (Shopify by a bulk operation), then the second (Shopify by pages, a new order)."""
    home = tmp_path_factory.mktemp(f"text-{request.param}") / "home"
    url = request.getfixturevalue("new_pg_database")() if request.param == "postgres" else None
    first_order = order(8001, "2026-05-10T15:00:00Z", SERVED)
    phases = [fixture(CLOCK_FIRST, [first_order]),
              fixture(CLOCK_SECOND, [first_order, order(8002, "2026-05-22T15:00:00Z", SERVED)])]
    stats = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        for number, phase in enumerate(phases, 1):
            path = home.parent / f"text-{number}.json"
            path.write_text(json.dumps(phase))  # lone surrogates and pairs as their escapes
            warehouse, results = sync_phase(path, home, url, monkeypatch)
            stats.append(results)
    return {"warehouse": warehouse, "stats": stats}


def synced_stats(synced: dict, phase: int, workspace_id: str):
    found = synced["stats"][phase][workspace_id]
    if isinstance(found, Exception):
        pytest.fail(f"the sync of {workspace_id} (phase {phase + 1}) failed:\n"
                    + "".join(traceback.format_exception(found)))
    return found


def value(text):
    return text if isinstance(text, (dict, list)) else json.loads(text)


def test_served_json_holds_the_escapes(tmp_path):
    """The fixture (as the sandbox serves it) has lone surrogate escapes, and pairs for 😀."""
    text = json.dumps(SERVED)
    assert "\\ud800" in text and "\\ud83d\\ude00" in text and "😀" not in text


@pytest.mark.parametrize("number", [8001, 8002], ids=["bulk", "pages"])
def test_shopify_lone_surrogates_become_replacement_characters(synced, number):
    synced_stats(synced, number - 8001, "text-store")
    lines, found = loaded_order(synced["warehouse"], "text-store", number)
    assert [row["title"] for row in lines] == STORED
    assert [row["name"] for row in lines] == STORED
    assert found["tags"] == STORED


def test_shopify_counts_what_it_replaced(synced):
    """Each order holds the texts three times (line titles and names, tags); the second sync reads the new
    order only."""
    first, second = synced_stats(synced, 0, "text-store"), synced_stats(synced, 1, "text-store")
    assert first.mode == "full" and second.mode == "incremental"
    # Arrow refused the bulk block for its lone surrogates: the order's line and its five lines holding
    # one are read alone, the block by Arrow
    assert "orders: 6 bulk line(s) with a lone surrogate read alone" in first.notes
    assert not [note for note in first.notes if "line by line" in note]
    assert (first.surrogates_replaced, second.surrogates_replaced) == (3 * LONE, 3 * LONE)
    assert first.as_metadata()["lone_surrogates_replaced"] == 3 * LONE
    assert (first.nul_removed, second.nul_removed) == (0, 0)


def test_stripe_lone_surrogates_become_replacement_characters(synced):
    stats = synced_stats(synced, 0, "text-saas")
    rows = synced["warehouse"].query("select name, metadata, preferred_locales from stripe.customers "
                                     "where workspace_id = 'text-saas' order by id")
    assert [row["name"] for row in rows] == STORED
    assert [value(row["metadata"]) for row in rows] == [{"text": text, text: "as a key"} for text in STORED]
    assert [value(row["preferred_locales"]) for row in rows] == [[text] for text in STORED]
    # name, a metadata value and key, a locale
    assert stats.surrogates_replaced == 4 * LONE
    assert stats.as_metadata()["lone_surrogates_replaced"] == 4 * LONE


def test_stripe_nul_characters_leave_keys_too(synced):
    stats = synced_stats(synced, 0, "keys-saas")
    rows = synced["warehouse"].query("select name, metadata from stripe.customers "
                                     "where workspace_id = 'keys-saas' order by id")
    assert [(row["name"], value(row["metadata"])) for row in rows] == [
        ("Ana", {"key": "value", "plain": "p"}), ("Bo", {"": "x", "a": ""})]
    assert stats.nul_removed == 3  # two keys, one value
    assert stats.surrogates_replaced == 0


# -- a bulk block with one lone surrogate: only its lines leave Arrow ---------------------------------

SHOP_ROWS_SQL = ("select table_name, column_name from information_schema.columns where table_schema = 'shopify' "
                 "and table_name not like '\\_dlt%' escape '\\' and column_name not like '\\_dlt%' escape '\\' "
                 "and column_name not in ('first_seen_at', 'last_seen_at') order by table_name, column_name")


def shop_tables(warehouse: ScenarioWarehouse) -> dict[str, list[str]]:
    """Every `shopify` table's rows (dlt's columns and the quarantine's clocks left out), as sorted JSON texts."""
    columns: dict[str, list[str]] = {}
    for row in warehouse.query(SHOP_ROWS_SQL):
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    tables = {}
    for table, names in columns.items():
        rows = warehouse.query("select " + ", ".join(f'"{name}"' for name in names) + f" from shopify.{table}")
        tables[table] = sorted(json.dumps(row, default=str, sort_keys=True) for row in rows)
    return tables


def test_a_bulk_block_reads_only_its_lines_with_a_lone_surrogate_alone(tmp_path, monkeypatch):
    """A shop's first sync: 300 orders in one bulk block, one with a lone surrogate in its tags and one line's
    title and name, one breaking the contract (its currency). Only the surrogate's two lines are read by
    the standard library (on main the whole block went line by line); the tables, the quarantine's record
    included, are those of the same shop served with U+FFFD in its place, which Arrow reads whole."""
    created = "2026-05-10T15:00:00Z"
    plain = [order(9100 + i, created, ["plain", f"order {i}"]) for i in range(300)]
    broken = {**order(9001, created, ["broken"]), "currencyCode": "ZZZ"}
    shops = {"served": [*plain[:150], broken, order(9002, created, ["a\udc00b", "plain"]), *plain[150:]],
             "stored": [*plain[:150], broken, order(9002, created, ["a\ufffdb", "plain"]), *plain[150:]]}
    synced = {}
    for name, orders in shops.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"clock": CLOCK_FIRST, "workspaces": {"text-store": {
            "name": "Text Store", "currency": "USD", "timezone": "UTC",
            "shopify": {"orders": orders, "products": [], "customers": []}}}}))
        warehouse, results = sync_phase(path, tmp_path / name / "home", None, monkeypatch)
        synced[name] = (warehouse, synced_stats({"stats": [results]}, 0, "text-store"))

    served, stored = synced["served"][1], synced["stored"][1]
    assert served.mode == stored.mode == "full"
    assert not [note for note in served.notes if "line by line" in note], served.notes
    assert "orders: 2 bulk line(s) with a lone surrogate read alone" in served.notes
    assert (served.surrogates_replaced, stored.surrogates_replaced) == (3, 0)
    assert served.quarantined_objects == stored.quarantined_objects == {"orders": 1}
    tables = shop_tables(synced["served"][0])
    assert tables == shop_tables(synced["stored"][0])
    assert len(tables["orders"]) == 301 and len(tables["order_line_items"]) == 2 * 301
    [record] = synced["served"][0].query("select object_id, field from shopify.quarantine_orders")
    assert (record["object_id"], record["field"]) == ("gid://shopify/Order/9001", "currency_code")
