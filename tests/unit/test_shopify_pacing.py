"""The Shopify client's pacing before an operation it has not seen answered yet (no sandbox)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.ingest.pipeline import SyncStats
from pipelines.ingest.shopify import _ShopifyFetch, bulk_above, queries
from pipelines.ingest.shopify import client as shopify_client
from pipelines.ingest.shopify.client import Bucket, ShopifyClient
from pipelines.workspaces import Connector


class Answer:
    """A 200 answer with `data` and the cost Shopify reports for it."""

    status_code = 200

    def __init__(self, data: dict, requested: float):
        self.headers: dict[str, str] = {}
        self.payload = {"data": data, "extensions": {"cost": {"requestedQueryCost": requested}}}

    def json(self) -> dict:
        return self.payload

    def raise_for_status(self) -> None:
        return None


@pytest.fixture
def drained(monkeypatch) -> tuple[ShopifyClient, list[float]]:
    """A client whose bucket was just seen empty (2,000 points, 100 restored a second, the sandbox's
    and an Advanced shop's), answering every count with 3; the waits it would sleep, recorded."""
    connector = Connector("shopify", "http://shop.invalid", {"access_token": "UNUSED"}, {}, "shop", Path("w.yaml"))
    client = ShopifyClient(connector, "2025-07", SyncStats())
    client.bucket = Bucket(available=0.0, maximum=2000.0, restore_rate=100.0, at=time.monotonic())
    waits: list[float] = []
    monkeypatch.setattr(shopify_client.time, "sleep", waits.append)

    def post(query, variables, operation):
        if operation.endswith("Count"):
            return Answer({f"{operation[:-5].lower()}Count": {"count": 3, "precision": "EXACT"}}, 1.0)
        return Answer({"orders": {"nodes": [], "pageInfo": {"hasNextPage": False}}}, 807.0)

    monkeypatch.setattr(client, "_post", post)
    return client, waits


def test_a_count_waits_for_its_one_point_not_for_a_whole_query(drained):
    """The connector's change count (1 point) is asked as soon as the bucket holds one point; it
    waited for 1,000 (the single-query limit: 10 s here) because its operation was not seen yet."""
    client, waits = drained
    fetch = SimpleNamespace(client=client)
    for spec in queries.SPECS.values():
        assert _ShopifyFetch._changed_count(fetch, spec, "updated_at:>='2026-11-25T00:00:00Z'") == 3
    assert sum(waits) <= 3 * 0.011, waits  # one point each at 100 a second (10 s each before)


def test_an_unseen_page_still_waits_for_the_single_query_limit(drained):
    """A page's cost is not known before its first answer: the client waits for 1,000 points, then
    for the cost Shopify reported (807) once it has seen one."""
    client, waits = drained
    client.execute(queries.page_query(queries.ORDERS), {"first": 5}, operation="OrdersPage")
    assert waits and 9.9 <= waits[0] <= 10.0, waits
    client.bucket = Bucket(available=0.0, maximum=2000.0, restore_rate=100.0, at=time.monotonic())
    client.execute(queries.page_query(queries.ORDERS), {"first": 5}, operation="OrdersPage")
    assert 8.0 <= waits[1] <= 8.07, waits


def test_bulk_above_two_pages_or_50_changes():
    """A later sync pages no more than two pages' worth of changes (2 × 807 points for orders fit a
    2,000-point bucket), nor more than 50: bulk above 10 orders, 16 products, 50 customers."""
    assert {root: bulk_above(spec) for root, spec in queries.SPECS.items()} == {
        "orders": 10, "products": 16, "customers": 50}
