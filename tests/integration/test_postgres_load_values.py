"""Awkward text reaches the raw tables exactly as the APIs served it, through both of dlt's load files.

On Postgres dlt writes an Arrow table (Shopify's bulk rows, Stripe's batches) as csv, copied with
`COPY` (pipelines/postgres_copy.py), and dict rows (Shopify's pages) as SQL inserts
(`Warehouse.load_file_format`). Quoting, NULL markers and escapes differ between the two, so the same
values go through both: a Shopify shop's first sync (a bulk operation) and its second (pages), and a
Stripe account. Each value is read back and compared with the one served; an empty string must stay an
empty string and a missing value NULL. DuckDB (parquet files) is held to the same values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scenario import ScenarioWarehouse, build_scenario

# Text that a csv or SQL writer, or a reader, could get wrong. NUL is not here: the quarantine removes
# it before any writer (tests/integration/test_quarantine.py).
AWKWARD = [
    "",
    "\\",
    "end\\",
    "\\N",  # COPY's text format reads this as NULL
    "\\.",  # COPY's end-of-data marker, alone on a line
    "before\n\\.\nafter",
    "\\.\n",
    'say "hi"',
    '""',  # a quoted empty field, as text
    "'single' quotes",
    "a,b",
    ",",
    "line1\nline2",
    "\n",
    "\r",
    "cr\rlf\r\n",
    "\ttab and  spaces ",
    " ",
    "NULL",
    "null",
    "\\x41 not bytes",
    "E'\\n'",
    "😀 non-BMP 𝄞 and é, ü, 中文",
    "x" * 100_000 + "\n\"" + "y" * 100_000,
]
EMAIL = "values@example.com"
CLOCK_FIRST, CLOCK_SECOND = "2026-05-20T00:00:00Z", "2026-05-25T00:00:00Z"


def money(amount: str) -> dict:
    return {"shopMoney": {"amount": amount, "currencyCode": "USD"},
            "presentmentMoney": {"amount": amount, "currencyCode": "USD"}}


def order(number: int, updated: str, texts: list[str] = AWKWARD) -> dict:
    """An order with one line per text (its title and name), one line without a SKU and one with an
    empty SKU; the texts also as its tags (a JSON column)."""
    lines = [{"id": f"gid://shopify/LineItem/{number}{i:03d}", "title": text, "name": text,
              "sku": None if i == 0 else "" if i == 1 else f"SKU-{i}", "quantity": 1, "currentQuantity": 1,
              "product": None, "variant": None, "originalUnitPriceSet": money("1.00"),
              "originalTotalSet": money("1.00"), "discountedTotalSet": money("1.00"),
              "totalDiscountSet": money("0.00"), "taxLines": [], "discountAllocations": []}
             for i, text in enumerate(texts)]
    total = money(f"{len(lines)}.00")
    return {"id": f"gid://shopify/Order/{number}", "legacyResourceId": str(number), "name": f"#{number}",
            "createdAt": updated, "updatedAt": updated, "processedAt": updated, "cancelledAt": None,
            "cancelReason": None, "closedAt": None, "test": False, "email": EMAIL, "customer": None,
            "currencyCode": "USD", "presentmentCurrencyCode": "USD", "displayFinancialStatus": "PAID",
            "displayFulfillmentStatus": "UNFULFILLED", "tags": texts, "sourceName": "",
            "discountCodes": [], "taxesIncluded": False, "subtotalPriceSet": total, "totalPriceSet": total,
            "currentTotalPriceSet": total, "totalDiscountsSet": money("0.00"), "totalTaxSet": money("0.00"),
            "totalShippingPriceSet": money("0.00"), "totalRefundedSet": money("0.00"), "taxLines": [],
            "shippingLines": [], "discountApplications": [], "lineItems": lines, "refunds": []}


def customer(i: int, text: str) -> dict:
    """A Stripe customer named by an awkward value, with it in its metadata too (a JSON column)."""
    return {"id": f"cus_{i:03d}", "object": "customer", "balance": 0, "created": 1775001600 + i, "currency": "usd",
            "delinquent": False, "email": None if i == 0 else f"c{i}@example.com", "invoice_prefix": f"P{i:03d}",
            "livemode": False, "metadata": {"text": text, text: "as a key"}, "name": text,
            "next_invoice_sequence": 1, "preferred_locales": [text], "tax_exempt": "none"}


def fixture(clock: str, orders: list[dict]) -> dict:
    stripe = {"customers": [customer(i, text) for i, text in enumerate(AWKWARD)], "products": [], "prices": [],
              "coupons": [], "discounts": [], "subscriptions": [], "invoices": [], "events": []}
    return {"clock": clock, "workspaces": {
        "values-store": {"name": "Values Store", "currency": "USD", "timezone": "UTC",
                         "shopify": {"orders": orders, "products": [], "customers": []}},
        "values-saas": {"name": "Values SaaS", "currency": "USD", "timezone": "UTC", "stripe": stripe},
    }}


def build(home: Path, warehouse_url: str | None) -> ScenarioWarehouse:
    """The first sync of both workspaces (Shopify by a bulk operation), then Shopify's second (by pages)
    with a new order: both orders carry every awkward value."""
    first_order = order(7001, "2026-05-10T15:00:00Z")
    phases = [fixture(CLOCK_FIRST, [first_order]),
              fixture(CLOCK_SECOND, [first_order, order(7002, "2026-05-22T15:00:00Z")])]
    warehouse = None
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("LOAD__DELETE_COMPLETED_JOBS", "false")  # keep the files test_both_load_paths_are_taken reads
        for number, phase in enumerate(phases, 1):
            path = home.parent / f"values-{number}.json"
            path.write_text(json.dumps(phase))
            warehouse = build_scenario(path, home, warehouse_url, monkeypatch, dbt_args=())
    return warehouse


def file_formats(home: Path, pipeline: str, table: str) -> list[str]:
    """The formats of the load files dlt wrote for `table`, one per load in load order (csv,
    insert_values, parquet)."""
    found = []
    for package in sorted((home / "dlt" / pipeline / "load" / "loaded").iterdir()):
        for job in (package / "completed_jobs").glob(f"{table}.*"):
            parts = job.name.removesuffix(".gz").split(".")
            if parts[-1] != "sql":
                found.append(parts[-1])
    return found


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def loaded(request, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp(f"values-{request.param}") / "home"
    url = request.getfixturevalue("new_pg_database")() if request.param == "postgres" else None
    return {"kind": request.param, "home": home, "warehouse": build(home, url)}


def test_both_load_paths_are_taken(loaded):
    """The Arrow path (first sync) and the dict path (second sync) each wrote a file: the values below went
    through both writers."""
    formats = file_formats(loaded["home"], "shopify__values_store", "order_line_items")
    arrow_file, dict_file = {"postgres": ("csv", "insert_values"), "duckdb": ("parquet", "parquet")}[loaded["kind"]]
    assert formats == [arrow_file, dict_file]
    assert set(file_formats(loaded["home"], "stripe__values_saas", "customers")) == {arrow_file}  # synced twice


def loaded_order(warehouse: ScenarioWarehouse, workspace_id: str, number: int) -> tuple[list[dict], dict]:
    """An order's loaded line items (in id order) and its own row, its tags decoded."""
    key = (workspace_id, f"gid://shopify/Order/{number}")
    lines = warehouse.query("select * from shopify.order_line_items where workspace_id = %s and order_id = %s "
                            "order by id", key)
    [found] = warehouse.query("select * from shopify.orders where workspace_id = %s and id = %s", key)
    return lines, {**found, "tags": found["tags"] if isinstance(found["tags"], list) else json.loads(found["tags"])}


@pytest.mark.parametrize("number", [7001, 7002], ids=["bulk-arrow", "pages-dicts"])
def test_shopify_text_comes_back_exactly(loaded, number):
    lines, found = loaded_order(loaded["warehouse"], "values-store", number)
    assert [row["title"] for row in lines] == AWKWARD
    assert [row["name"] for row in lines] == AWKWARD
    assert [row["sku"] for row in lines][:3] == [None, "", "SKU-2"]
    assert found["tags"] == AWKWARD
    assert (found["source_name"], found["email"]) == ("", EMAIL)


def test_stripe_text_comes_back_exactly(loaded):
    warehouse: ScenarioWarehouse = loaded["warehouse"]
    rows = warehouse.query("select id, name, email, metadata, preferred_locales from stripe.customers "
                           "where workspace_id = 'values-saas' order by id")
    assert [row["name"] for row in rows] == AWKWARD
    assert [row["email"] for row in rows][:2] == [None, "c1@example.com"]

    def value(text):
        return text if isinstance(text, (dict, list)) else json.loads(text)

    assert [value(row["metadata"]) for row in rows] == [{"text": text, text: "as a key"} for text in AWKWARD]
    assert [value(row["preferred_locales"]) for row in rows] == [[text] for text in AWKWARD]
