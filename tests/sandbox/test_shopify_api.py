"""The fake Shopify Admin GraphQL API over real HTTP: auth, paging, search, cost, faults, bulk, schema."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    build_client_schema,
    build_schema,
    parse,
    validate,
)

from pipelines.sandbox.core.http import ApiHandler
from pipelines.sandbox.fixtures import load_fixtures
from pipelines.sandbox.server import Sandbox
from pipelines.sandbox.shopify.api import SCHEMA_PATH
from pipelines.sandbox.simulation.simulator import parse_iso
from pipelines.sandbox.core.store import SandboxStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shopify_small.json"
SHOP = "test-shop"
DOC = json.loads(FIXTURE.read_text())["workspaces"][SHOP]["shopify"]


@pytest.fixture
def sandbox(tmp_path):
    store = SandboxStore(tmp_path / "sandbox.db")
    load_fixtures(store, FIXTURE)
    with Sandbox(store) as running:
        yield running


class Client:
    """Posts GraphQL to one shop of the sandbox."""

    def __init__(self, sandbox: Sandbox, token: str | None = None, version: str = "2026-10"):
        account = sandbox.store.accounts("shopify")[SHOP]
        self.sandbox = sandbox
        self.account = account
        self.token = token or account["access_token"]
        self.url = f"{sandbox.shopify_url}/shops/{SHOP}/admin/api/{version}/graphql.json"

    def post(self, query: str, variables: dict | None = None, **headers) -> requests.Response:
        return requests.post(
            self.url, json={"query": query, "variables": variables or {}},
            headers={"X-Shopify-Access-Token": self.token, **headers}, timeout=10,
        )

    def data(self, query: str, variables: dict | None = None) -> dict:
        body = self.post(query, variables).json()
        assert "errors" not in body, body
        return body["data"]

    def page_all(self, field: str, args: str = "", size: int = 2, after_page=None) -> list[dict]:
        """Every node of a root connection, page by page; `after_page(n)` runs between pages."""
        query = (f"query($after: String) {{ {field}(first: {size}, after: $after {args}) "
                 "{ pageInfo { hasNextPage endCursor } edges { cursor node { id updatedAt } } } }")
        found, after, pages = [], None, 0
        while True:
            conn = self.data(query, {"after": after})[field]
            found.extend(edge["node"] for edge in conn["edges"])
            pages += 1
            if not conn["pageInfo"]["hasNextPage"]:
                return found
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
            after = conn["pageInfo"]["endCursor"]
            if after_page:
                after_page(pages)


def _ids(objects) -> list[str]:
    return [o["id"] for o in objects]


def _touch(store: SandboxStore, kind: str, node: dict, updated_at: str) -> None:
    """Change an object the way the simulator does: new body and updatedAt."""
    node = {**node, "updatedAt": updated_at}
    store.put(SHOP, "shopify", kind, node["id"], created=parse_iso(node["createdAt"]), updated=parse_iso(updated_at),
              body=node)


# -- auth ----------------------------------------------------------------------------------------


def test_bad_or_missing_token_gets_shopify_401(sandbox):
    client = Client(sandbox, token="shpat_wrong")
    for headers in ({}, {"X-Shopify-Access-Token": ""}):
        response = client.post("{ shop { name } }", **headers)
        assert response.status_code == 401
        assert response.json() == {
            "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
        }
    assert Client(sandbox).data("{ shop { name } }") == {"shop": {"name": "Test Outfitters"}}


def test_unknown_shop_and_version_are_404(sandbox):
    assert requests.post(f"{sandbox.shopify_url}/shops/nope/admin/api/2026-10/graphql.json", json={}).status_code == 404
    response = Client(sandbox, version="2023-10").post("{ shop { name } }")
    assert response.status_code == 404 and "2023-10" in response.json()["errors"]


def test_client_credentials_grant_form_and_json(sandbox):
    account = Client(sandbox).account
    url = f"{sandbox.shopify_url}/shops/{SHOP}/admin/oauth/access_token"
    fields = {"grant_type": "client_credentials", "client_id": account["client_id"],
              "client_secret": account["client_secret"]}
    for response in (requests.post(url, data=fields), requests.post(url, json=fields)):
        assert response.status_code == 200
        grant = response.json()
        assert grant["access_token"].startswith("shpat_") and grant["access_token"] != account["access_token"]
        assert grant["scope"] == ",".join(account["scopes"]) and grant["expires_in"] == 86399
        assert Client(sandbox, token=grant["access_token"]).data("{ shop { name } }")["shop"]["name"]

    wrong = requests.post(url, data={**fields, "client_secret": "shpss_wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    other_grant = requests.post(url, data={**fields, "grant_type": "authorization_code"})
    assert other_grant.status_code == 400 and other_grant.json()["error"] == "unsupported_grant_type"


def test_issued_token_expires(sandbox):
    account = Client(sandbox).account
    sandbox.store.put_account(SHOP, "shopify", {**account, "token_ttl_seconds": 1})
    grant = requests.post(f"{sandbox.shopify_url}/shops/{SHOP}/admin/oauth/access_token", data={
        "grant_type": "client_credentials", "client_id": account["client_id"], "client_secret": account["client_secret"],
    }).json()
    client = Client(sandbox, token=grant["access_token"])
    assert grant["expires_in"] == 1 and client.post("{ shop { name } }").status_code == 200
    time.sleep(1.1)
    assert client.post("{ shop { name } }").status_code == 401


# -- paging and search ---------------------------------------------------------------------------


@pytest.mark.parametrize("field, sort", [
    ("orders", ""), ("orders", ", sortKey: ID"), ("orders", ", sortKey: UPDATED_AT, reverse: true"),
    ("products", ""), ("products", ", sortKey: CREATED_AT"), ("customers", ""), ("customers", ", sortKey: UPDATED_AT"),
])
def test_paging_returns_every_object_once(sandbox, field, sort):
    found = Client(sandbox).page_all(field, sort)
    assert sorted(_ids(found)) == sorted(_ids(DOC[field]))


def test_paging_by_id_while_objects_change(sandbox):
    """Objects updated between pages (seen and not yet seen) are neither skipped nor repeated."""
    orders = sorted(DOC["orders"], key=lambda o: o["id"])

    def edit(page: int) -> None:
        _touch(sandbox.store, "order", orders[0], f"2026-03-31T0{page}:00:00Z")  # already seen
        _touch(sandbox.store, "order", orders[-1], f"2026-03-31T0{page}:30:00Z")  # still to come

    found = Client(sandbox).page_all("orders", ", sortKey: ID", size=2, after_page=edit)
    assert _ids(found) == _ids(orders)
    assert found[-1]["updatedAt"] == "2026-03-31T02:30:00Z"  # the last page saw the edited version


def test_paging_by_updated_at_never_skips_while_objects_change(sandbox):
    orders = sorted(DOC["orders"], key=lambda o: (o["updatedAt"], o["id"]))

    def edit(page: int) -> None:  # move an unseen order to the end and a seen one after the cursor
        _touch(sandbox.store, "order", orders[-page], f"2026-03-31T1{page}:00:00Z")
        _touch(sandbox.store, "order", orders[0], f"2026-03-31T2{page}:00:00Z")

    found = Client(sandbox).page_all("orders", ", sortKey: UPDATED_AT", size=2, after_page=edit)
    assert set(_ids(found)) == set(_ids(orders))
    stamps = [o["updatedAt"] for o in found]
    assert stamps == sorted(stamps)


def test_updated_at_filter_with_updated_at_sort_reads_only_changed(sandbox):
    since = "2026-03-05T12:00:00Z"
    expected = sorted((o for o in DOC["orders"] if o["updatedAt"] > since), key=lambda o: (o["updatedAt"], o["id"]))
    query = f"updated_at:>'{since}'"
    found = Client(sandbox).page_all("orders", f', sortKey: UPDATED_AT, query: "{query}"', size=1)
    assert _ids(found) == _ids(expected)
    inclusive = Client(sandbox).page_all("orders", f", sortKey: UPDATED_AT, query: \"updated_at:>='{since}'\"")
    assert len(inclusive) == len(expected) + 1  # the order updated exactly at `since`

    log = [e for e in sandbox.requests.entries(server="shopify") if e.get("query_filters") == [query]]
    assert [e["nodes"] for e in log] == [1] * len(expected)
    assert {e["sort_keys"][0] for e in log} == {"UPDATED_AT"}


def test_created_at_test_and_status_filters(sandbox):
    client = Client(sandbox)
    query = '{ orders(first: 50, query: "%s") { nodes { id } } }'
    march = client.data(query % "created_at:>=2026-03-01 created_at:<'2026-03-15T00:00:00Z'")["orders"]["nodes"]
    assert _ids(march) == ["gid://shopify/Order/7003", "gid://shopify/Order/7004"]
    assert _ids(client.data(query % "test:true")["orders"]["nodes"]) == ["gid://shopify/Order/7005"]
    assert _ids(client.data(query % "status:cancelled")["orders"]["nodes"]) == ["gid://shopify/Order/7004"]
    draft = client.data('{ products(first: 5, query: "status:draft") { nodes { id } } }')["products"]["nodes"]
    assert _ids(draft) == ["gid://shopify/Product/1002"]


def test_backward_paging_with_last_and_before(sandbox):
    client = Client(sandbox)
    query = ("query($before: String) { customers(last: 2, before: $before) "
             "{ pageInfo { hasPreviousPage startCursor } nodes { id } } }")
    first = client.data(query)["customers"]
    second = client.data(query, {"before": first["pageInfo"]["startCursor"]})["customers"]
    assert _ids(second["nodes"]) + _ids(first["nodes"]) == sorted(_ids(DOC["customers"]))
    assert first["pageInfo"]["hasPreviousPage"] and not second["pageInfo"]["hasPreviousPage"]


def test_orders_older_than_60_days_need_read_all_orders(sandbox):
    account = Client(sandbox).account
    sandbox.store.put_account(SHOP, "shopify", {**account, "scopes": ["read_orders", "read_products"]})
    found = Client(sandbox).page_all("orders")
    assert "gid://shopify/Order/7001" not in _ids(found) and len(found) == len(DOC["orders"]) - 1
    denied = Client(sandbox).post("{ customers(first: 1) { nodes { id } } }").json()
    assert denied["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


def test_page_size_cap_and_required_page_size(sandbox):
    body = Client(sandbox).post("{ orders(first: 251) { nodes { id } } }").json()
    assert "data" not in body
    assert body["errors"][0]["message"].startswith("first cannot exceed 250.")
    body = Client(sandbox).post("{ orders(first: 1) { nodes { lineItems { nodes { id } } } } }").json()
    assert body["errors"][0]["message"] == "you must provide one of first or last"


def test_nested_connections_are_sliced_with_their_own_page_info(sandbox):
    client = Client(sandbox)
    query = """query($after: String) { order(id: "gid://shopify/Order/7004") {
        lineItems(first: 2, after: $after) { pageInfo { hasNextPage hasPreviousPage endCursor }
                                             edges { cursor node { id sku variant { id sku } } } }
        last: lineItems(last: 1) { nodes { id } } } }"""
    stored = [item["id"] for item in next(o for o in DOC["orders"] if o["name"] == "#1004")["lineItems"]]
    page1 = client.data(query)["order"]
    assert [e["node"]["id"] for e in page1["lineItems"]["edges"]] == stored[:2]
    assert page1["lineItems"]["pageInfo"]["hasNextPage"] and not page1["lineItems"]["pageInfo"]["hasPreviousPage"]
    assert page1["last"]["nodes"] == [{"id": stored[2]}]
    # the variant reference is resolved from the products, since more than its id was selected
    assert page1["lineItems"]["edges"][0]["node"]["variant"] == {"id": "gid://shopify/ProductVariant/2001",
                                                                  "sku": "TENT-2"}
    page2 = client.data(query, {"after": page1["lineItems"]["pageInfo"]["endCursor"]})["order"]["lineItems"]
    assert [e["node"]["id"] for e in page2["edges"]] == stored[2:]
    assert not page2["pageInfo"]["hasNextPage"] and page2["pageInfo"]["hasPreviousPage"]


def test_references_and_interfaces_resolve(sandbox):
    order = Client(sandbox).data("""{ order(id: "gid://shopify/Order/7002") {
        customer { id displayName }
        discountApplications(first: 5) { nodes { __typename ... on DiscountCodeApplication { code }
                                                 value { ... on PricingPercentageValue { percentage } } } }
        refunds { refundLineItems(first: 5) { nodes { quantity lineItem { id sku } } } } } }""")["order"]
    assert order["customer"] == {"id": "gid://shopify/Customer/4000", "displayName": "Ana Silva"}
    assert order["discountApplications"]["nodes"] == [
        {"__typename": "DiscountCodeApplication", "code": "SPRING10", "value": {"percentage": 10.0}}
    ]
    assert order["refunds"][0]["refundLineItems"]["nodes"] == [
        {"quantity": 1, "lineItem": {"id": "gid://shopify/LineItem/70021", "sku": "MUG"}}
    ]


def test_counts(sandbox):
    counts = Client(sandbox).data('{ ordersCount(query: "test:false") { count precision } '
                                  "productsCount(limit: 1) { count precision } customersCount { count } }")
    assert counts == {"ordersCount": {"count": 5, "precision": "EXACT"},
                      "productsCount": {"count": 1, "precision": "AT_LEAST"}, "customersCount": {"count": 3}}


# -- cost and throttling -------------------------------------------------------------------------


def _slow_refill(sandbox: Sandbox) -> None:
    """Restore 1 point/s, so the bucket level read back is exact (it is reported rounded down)."""
    account = sandbox.store.accounts("shopify")[SHOP]
    sandbox.store.put_account(SHOP, "shopify", {**account, "throttle": {"maximum_available": 2000, "restore_rate": 1}})


def test_cost_extension_and_request_log(sandbox):
    _slow_refill(sandbox)
    response = Client(sandbox).post(
        'query Recent { orders(first: 3, query: "test:false") { nodes { id totalPriceSet { shopMoney { amount } } } } }'
    ).json()
    cost = response["extensions"]["cost"]
    # 2 + 3 nodes x (1 order + 1 MoneyBag + 1 MoneyV2); all 3 nodes came back
    assert cost["requestedQueryCost"] == 11 and cost["actualQueryCost"] == 11
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 1989, "restoreRate": 1.0}
    entry = sandbox.requests.entries(server="shopify")[-1]
    assert entry["shop"] == SHOP and entry["operation"] == "Recent"
    assert (entry["requested_cost"], entry["actual_cost"], entry["nodes"]) == (11, 11, 3)
    assert entry["query_filters"] == ["test:false"] and entry["sort_keys"] == ["PROCESSED_AT"]


def test_unused_cost_is_refunded(sandbox):
    _slow_refill(sandbox)
    cost = Client(sandbox).post('{ orders(first: 10, query: "test:true") { nodes { id } } }').json()["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (12, 3)
    assert cost["throttleStatus"]["currentlyAvailable"] == 2000 - 3


def test_throttled_when_bucket_is_empty_then_recovers(sandbox):
    client = Client(sandbox)
    sandbox.store.put_account(SHOP, "shopify", {**client.account, "throttle": {"maximum_available": 10,
                                                                              "restore_rate": 2}})
    query = "{ orders(first: 2) { nodes { id } } }"  # costs 4
    levels = [client.post(query).json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] for _ in range(2)]
    assert levels == [6, 2]
    throttled = client.post(query)
    assert throttled.status_code == 200
    assert throttled.json() == {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                                                           "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 4, "actualQueryCost": None,
                                "throttleStatus": {"maximumAvailable": 10.0, "currentlyAvailable": 2, "restoreRate": 2.0}}},
    }
    time.sleep((4 - 2) / 2 + 0.05)  # what a client computes from throttleStatus
    assert "data" in client.post(query).json()


def test_cost_uses_variables_and_their_defaults(sandbox):
    query = "query($n: Int = 3) { products(first: $n) { nodes { id } } }"
    assert Client(sandbox).post(query).json()["extensions"]["cost"]["requestedQueryCost"] == 2 + 3
    assert Client(sandbox).post(query, {"n": 1}).json()["extensions"]["cost"]["requestedQueryCost"] == 2 + 1
    body = Client(sandbox).post(query, {"n": "many"}).json()
    assert "data" not in body and "$n" in body["errors"][0]["message"]


def test_single_query_over_1000_points_is_rejected(sandbox):
    body = Client(sandbox).post("{ orders(first: 250) { nodes { lineItems(first: 10) { nodes { id } } } } }").json()
    assert "data" not in body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED" and error["extensions"]["maxCost"] == 1000
    assert error["message"].startswith(f"Query cost is {error['extensions']['cost']}, which exceeds")


# -- faults --------------------------------------------------------------------------------------


def _set_faults(sandbox: Sandbox, spec: str) -> None:
    assert requests.put(f"{sandbox.shopify_url}/_sandbox/faults", json={"spec": spec}).status_code == 200


def test_injected_faults(sandbox):
    client = Client(sandbox)
    _set_faults(sandbox, "shopify:throttled=1")
    body = client.post("{ shop { name } }").json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
    assert set(body["extensions"]["cost"]["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}

    _set_faults(sandbox, "shopify:429=1")
    response = client.post("{ shop { name } }")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json() == {"errors": "Exceeded 2 calls per second for api client. "
                                         "Reduce request rates to resume uninterrupted service."}

    _set_faults(sandbox, "shopify:5xx=1")
    assert {client.post("{ shop { name } }").status_code for _ in range(6)} <= {500, 502, 503}

    _set_faults(sandbox, "shopify:truncate=1")
    with pytest.raises(requests.exceptions.RequestException):
        client.post("{ shop { name } }")

    _set_faults(sandbox, "")
    assert client.data("{ shop { name } }")


def test_responses_are_not_held_back_by_nagle(sandbox, monkeypatch):
    """Every server sends with TCP_NODELAY: a response's body is written after its headers, and Nagle's
    algorithm held it until the client's delayed ACK (about 40 ms a request on Linux)."""
    nodelay = []
    handle = ApiHandler.handle

    def recording(self):
        nodelay.append((self.server_name, self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        handle(self)

    monkeypatch.setattr(ApiHandler, "handle", recording)
    Client(sandbox).data("{ shop { name } }")
    requests.get(f"{sandbox.stripe_url}/v1/customers", timeout=10)
    requests.get(f"{sandbox.servers['ecb'].base_url}/stats/eurofxref/eurofxref-hist.zip", timeout=10)
    assert {name for name, _ in nodelay} == {"shopify", "stripe", "ecb"}
    assert all(value for _, value in nodelay), nodelay


# -- bulk operations -----------------------------------------------------------------------------

BULK_ORDERS = """{ orders(query: "test:false") { edges { node {
    id name totalPriceSet { shopMoney { amount } }
    lineItems { edges { node { id sku quantity variant { id sku } } } }
    refunds { id refundLineItems { edges { node { quantity lineItem { id } } } } }
} } } }"""
RUN = """mutation($q: String!, $g: Boolean!) { bulkOperationRunQuery(query: $q, groupObjects: $g) {
    bulkOperation { id status } userErrors { field message code } } }"""
POLL = """query($id: ID!) { bulkOperation(id: $id) {
    id status errorCode objectCount rootObjectCount fileSize url partialDataUrl completedAt } }"""


def _run_bulk(client: Client, query: str, group: bool = False, timeout: float = 10) -> tuple[dict, list[dict]]:
    started = client.data(RUN, {"q": query, "g": group})["bulkOperationRunQuery"]
    assert started["userErrors"] == [] and started["bulkOperation"]["status"] == "CREATED"
    deadline = time.monotonic() + timeout
    while True:
        op = client.data(POLL, {"id": started["bulkOperation"]["id"]})["bulkOperation"]
        if op["status"] not in ("CREATED", "RUNNING"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert op["status"] == "COMPLETED", op
    download = requests.get(op["url"])  # no token: a presigned-style URL
    assert download.status_code == 200 and len(download.content) == int(op["fileSize"])
    return op, [json.loads(line) for line in download.text.splitlines()]


def test_bulk_export_matches_the_store(sandbox):
    client = Client(sandbox)
    op, lines = _run_bulk(client, BULK_ORDERS)
    orders = {o["id"]: o for o in DOC["orders"] if not o["test"]}
    variants = {v["id"]: v["sku"] for p in DOC["products"] for v in p["variants"]}
    roots = [line for line in lines if "__parentId" not in line]
    assert sorted(_ids(roots)) == sorted(orders)
    for root in roots:
        order = orders[root["id"]]
        assert root == {"id": order["id"], "name": order["name"],
                        "totalPriceSet": {"shopMoney": {"amount": order["totalPriceSet"]["shopMoney"]["amount"]}},
                        "refunds": [{"id": r["id"]} for r in order["refunds"]]}
    items = [line for line in lines if line.get("__parentId") in orders]
    assert sorted(_ids(items)) == sorted(i["id"] for o in orders.values() for i in o["lineItems"])
    for item in items:
        stored = next(i for i in orders[item["__parentId"]]["lineItems"] if i["id"] == item["id"])
        assert item == {"id": stored["id"], "sku": stored["sku"], "quantity": stored["quantity"],
                        "variant": {"id": stored["variant"]["id"], "sku": variants[stored["variant"]["id"]]},
                        "__parentId": item["__parentId"]}
    refund_items = [line for line in lines if str(line.get("__parentId")).startswith("gid://shopify/Refund/")]
    assert refund_items == [{"quantity": 1, "lineItem": {"id": "gid://shopify/LineItem/70021"},
                             "__parentId": "gid://shopify/Refund/7002"}]
    assert (int(op["rootObjectCount"]), int(op["objectCount"])) == (len(roots), len(lines))
    started = [e for e in sandbox.requests.entries(server="shopify") if e.get("bulk_operations")]
    assert [e["bulk_operations"] for e in started] == [[{"id": op["id"], "query": BULK_ORDERS}]]
    current = client.data("{ currentBulkOperation(type: QUERY) { id status } }")["currentBulkOperation"]
    assert current == {"id": op["id"], "status": "COMPLETED"}
    listed = client.data('{ bulkOperations(first: 5, query: "status:completed") { nodes { id } } }')
    assert listed["bulkOperations"]["nodes"] == [{"id": op["id"]}]


def test_bulk_grouped_objects_follow_their_parent(sandbox):
    _, lines = _run_bulk(Client(sandbox), "{ products { edges { node { id variants { edges { node { id } } } } } } }",
                         group=True)
    parent = None
    for line in lines:
        if "__parentId" not in line:
            parent = line["id"]
        else:
            assert line["__parentId"] == parent
    assert sum("__parentId" in line for line in lines) == 3


def test_bulk_file_is_sent_whole_or_cut_in_half(sandbox):
    """The file's exact bytes; with the truncate fault, its first half and a closed connection."""
    op, _ = _run_bulk(Client(sandbox), BULK_ORDERS)
    stored = (sandbox.store.path.parent / "bulk" / op["url"].rsplit("/", 1)[-1]).read_bytes()
    assert requests.get(op["url"]).content == stored
    _set_faults(sandbox, "shopify:truncate=1")
    host, port = sandbox.servers["shopify"].server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", urlsplit(op["url"]).path)
    response = connection.getresponse()
    assert int(response.headers["Content-Length"]) == len(stored)
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    assert cut.value.partial == stored[: len(stored) // 2]


def test_bulk_export_reads_a_snapshot(sandbox):
    """Changes made after the mutation answered are not in the file."""
    client = Client(sandbox)
    started = client.data(RUN, {"q": "{ customers { edges { node { id updatedAt } } } }", "g": False})
    _touch(sandbox.store, "customer", DOC["customers"][0], "2026-04-01T00:00:00Z")
    op_id = started["bulkOperationRunQuery"]["bulkOperation"]["id"]
    while (op := client.data(POLL, {"id": op_id})["bulkOperation"])["status"] != "COMPLETED":
        time.sleep(0.05)
    lines = [json.loads(line) for line in requests.get(op["url"]).text.splitlines()]
    assert {line["updatedAt"] for line in lines} == {c["updatedAt"] for c in DOC["customers"]}


def test_bulk_cancel_of_a_finished_or_unknown_operation(sandbox):
    client = Client(sandbox)
    op, _ = _run_bulk(client, "{ customers { edges { node { id } } } }")
    cancel = "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }"
    done = client.data(cancel, {"id": op["id"]})["bulkOperationCancel"]
    assert done["bulkOperation"] == {"status": "COMPLETED"} and "completed" in done["userErrors"][0]["message"]
    unknown = client.data(cancel, {"id": "gid://shopify/BulkOperation/999"})["bulkOperationCancel"]
    assert unknown == {"bulkOperation": None, "userErrors": [{"message": "Bulk operation does not exist"}]}


def _many_orders(store: SandboxStore, count: int) -> None:
    """`count` more orders, copies of the fixture's first one: an export that takes a while."""
    first = DOC["orders"][0]
    created = parse_iso(first["createdAt"])
    store.put_many((SHOP, "shopify", "order", f"gid://shopify/Order/{900000 + n}", created, created, False,
                    {**first, "id": f"gid://shopify/Order/{900000 + n}", "legacyResourceId": str(900000 + n)})
                   for n in range(count))


def _export_processes() -> set[int]:
    """The pids of the export processes running now: children of this process, which serves the
    sandboxes (another test's may be there too)."""
    found = set()
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "pipelines.sandbox.shopify.exports" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:  # it ended meanwhile
            pass
    return found


def test_bulk_export_runs_in_a_process_of_its_own(sandbox):
    """The export's work is not done in the server's interpreter, where it would slow every request of
    both APIs (and they it): the server only follows it. A cancel reaches the export's process, which
    stops and leaves whole lines behind; a sandbox stopped during an export ends the export too."""
    _many_orders(sandbox.store, 30_000)
    client = Client(sandbox)
    others = _export_processes()
    _run_bulk(client, "{ customers { edges { node { id } } } }")  # the export process is up
    (pid,) = _export_processes() - others
    exporter = psutil.Process(pid)

    def exports_cpu() -> float:
        times = exporter.cpu_times()
        return times.user + times.system

    def follow(op_id: str, until: str) -> dict:
        deadline = time.monotonic() + 60
        while (op := client.data(POLL, {"id": op_id})["bulkOperation"])["status"] in ("CREATED", "RUNNING", "CANCELING"):
            assert time.monotonic() < deadline and op["status"] != until, op
            time.sleep(0.05)
        assert op["status"] == until, op
        return op

    ours, theirs = time.process_time(), exports_cpu()
    op = follow(client.data(RUN, {"q": BULK_ORDERS, "g": False})["bulkOperationRunQuery"]["bulkOperation"]["id"],
                "COMPLETED")
    ours, theirs = time.process_time() - ours, exports_cpu() - theirs
    assert int(op["rootObjectCount"]) == 30_000 + sum(not order["test"] for order in DOC["orders"])
    assert theirs > 0.3 and ours < theirs / 2, (ours, theirs)

    def started() -> str:
        """An export of the orders, once it has written lines."""
        op_id = client.data(RUN, {"q": BULK_ORDERS, "g": False})["bulkOperationRunQuery"]["bulkOperation"]["id"]
        while int((op := client.data(POLL, {"id": op_id})["bulkOperation"])["objectCount"]) == 0:
            assert op["status"] == "RUNNING", op  # the count comes from the export's process
            time.sleep(0.02)
        return op_id

    cancel = "mutation($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } userErrors { message } } }"
    op_id = started()
    assert client.data(cancel, {"id": op_id})["bulkOperationCancel"]["bulkOperation"] == {"status": "CANCELING"}
    op = follow(op_id, "CANCELED")
    assert op["url"] is None
    partial = [json.loads(line) for line in requests.get(op["partialDataUrl"]).text.splitlines()]
    assert 0 < sum("__parentId" not in line for line in partial) < 30_000

    # The export process killed during an export: the operation fails (its partial file kept), and the
    # next export gets a new process.
    op_id = started()
    exporter.kill()
    op = follow(op_id, "FAILED")
    assert op["errorCode"] == "INTERNAL_SERVER_ERROR" and op["url"] is None and op["partialDataUrl"], op
    _run_bulk(client, "{ customers { edges { node { id } } } }")
    assert _export_processes() - others - {exporter.pid}

    client.data(RUN, {"q": BULK_ORDERS, "g": False})
    mine = _export_processes() - others
    assert mine
    sandbox.stop()
    deadline = time.monotonic() + 10
    while _export_processes() & mine:
        assert time.monotonic() < deadline, "the export outlived the sandbox"
        time.sleep(0.05)


@pytest.mark.parametrize("query, message", [
    ("{ shop { name } }", "connection"),
    ("{ orders { edges { node { id refunds { id refundLineItems { edges { node { lineItem { id } } } } } "
     "lineItems { edges { node { id } } } } } } }", ""),  # valid: two nested connections at depth 2
    ("{ orders { edges { node { id lineItems { edges { node { id } } } shippingLines { edges { node { title } } } "
     "discountApplications { edges { node { index } } } refunds { id refundLineItems { edges { node { quantity } } } "
     "refundShippingLines { edges { node { id } } } } } } } }", "more than 5 connections"),
    ("{ orders { edges { node { lineItems { edges { node { id } } } } } } }", "must select the 'id' field"),
    ("{ orders { edges { node { nope } } } }", "Cannot query field 'nope'"),
    ("{ orders { edges { cursor } } }", "must select 'edges { node }' or 'nodes'"),
])
def test_bulk_query_validation(sandbox, query, message):
    result = Client(sandbox).data(RUN, {"q": query, "g": False})["bulkOperationRunQuery"]
    if not message:
        assert result["userErrors"] == []
        return
    assert result["bulkOperation"] is None
    (error,) = result["userErrors"]
    assert error["code"] == "INVALID" and message in error["message"]


# -- the schema ----------------------------------------------------------------------------------


def schema_differences(ours, real) -> list[str]:
    """Everything in `ours` that the `real` schema lacks or types differently."""
    problems = []
    for name, ours_type in ours.type_map.items():
        if name.startswith("__"):
            continue
        real_type = real.type_map.get(name)
        if real_type is None or type(real_type) is not type(ours_type):
            problems.append(f"type {name}: missing or a different kind in the real schema")
            continue
        if isinstance(ours_type, (GraphQLObjectType, GraphQLInterfaceType, GraphQLInputObjectType)):
            for field_name, field in ours_type.fields.items():
                real_field = real_type.fields.get(field_name)
                if real_field is None or str(real_field.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {field.type} vs {getattr(real_field, 'type', None)}")
                    continue
                if isinstance(ours_type, GraphQLInputObjectType) and real_field.default_value != field.default_value:
                    problems.append(f"{name}.{field_name}: default differs")
                for arg_name, arg in getattr(field, "args", {}).items():
                    real_arg = real_field.args.get(arg_name)
                    if real_arg is None or str(real_arg.type) != str(arg.type) or (
                        real_arg.default_value != arg.default_value
                    ):
                        problems.append(f"{name}.{field_name}({arg_name}): missing or differs")
        if isinstance(ours_type, (GraphQLObjectType, GraphQLInterfaceType)):
            missing = {i.name for i in ours_type.interfaces} - {i.name for i in real_type.interfaces}
            problems.extend(f"{name} implements {i}: not in the real schema" for i in sorted(missing))
        if isinstance(ours_type, GraphQLEnumType):
            problems.extend(f"{name}.{value}" for value in sorted(set(ours_type.values) - set(real_type.values)))
        if isinstance(ours_type, GraphQLUnionType):
            members = {member.name for member in real_type.types}
            problems.extend(f"{name} | {member.name}" for member in ours_type.types if member.name not in members)
    return problems


def test_schema_differences_catch_every_kind_of_drift():
    real = build_schema("""
        type Query { orders(first: Int, reverse: Boolean = false): [Order!]! value: Price }
        interface Node { id: ID! }
        type Order implements Node { id: ID! name: String status: Status }
        enum Status { OPEN CLOSED }
        type Money { amount: String }  type Percent { rate: Float }  union Price = Money | Percent""")
    drifted = build_schema("""
        type Query { orders(first: Int!, reverse: Boolean = true, sort: String): [Order!] value: Price }
        interface Node { id: ID! }  interface Thing { id: ID! }
        type Order implements Node & Thing { id: ID! name: String! status: Status extra: Int }
        enum Status { OPEN CLOSED DRAFT }
        type Money { amount: String }  type Gift { code: String }  union Price = Money | Gift""")
    assert schema_differences(real, real) == []
    assert sorted(schema_differences(drifted, real)) == sorted([
        "Query.orders: [Order!] vs [Order!]!", "Order.name: String! vs String", "Order.extra: Int vs None",
        "Order implements Thing: not in the real schema", "Status.DRAFT", "Price | Gift",
        "type Thing: missing or a different kind in the real schema",
        "type Gift: missing or a different kind in the real schema",
    ])
    fields_only = build_schema("""
        type Query { orders(first: Int!, reverse: Boolean = true, sort: String): [Order!]! value: Price }
        interface Node { id: ID! }  type Order implements Node { id: ID! }
        type Money { amount: String }  union Price = Money""")
    assert sorted(schema_differences(fields_only, real)) == [
        "Query.orders(first): missing or differs", "Query.orders(reverse): missing or differs",
        "Query.orders(sort): missing or differs",
    ]


def test_schema_is_a_strict_subset_of_the_real_admin_schema(reference):
    """Checked against Shopify's own introspection, which admin-2026-10.graphql is printed from:
    it loads in a second, where parsing the 3.7 MB SDL takes several."""
    with gzip.open(reference / "shopify" / "admin-2026-10.introspection.json.gz") as file:
        real = build_client_schema(json.load(file)["data"], assume_valid=True)
    assert schema_differences(build_schema(SCHEMA_PATH.read_text()), real) == []


def test_example_queries_validate_against_our_schema(reference):
    ours = build_schema(SCHEMA_PATH.read_text())
    examples = parse((reference / "shopify" / "examples" / "example-queries.graphql").read_text())
    assert validate(ours, examples) == []
