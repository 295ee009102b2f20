"""The fake Stripe API over real HTTP, against the hand-made fixture tests/fixtures/stripe_small.json.

Expected values come from the fixture file itself (read as plain JSON), never from the server.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from pipelines.sandbox.stripe import versions as stripe_versions
from pipelines.sandbox.fixtures import load_fixtures
from pipelines.sandbox.core.http import Faults, RequestLog, SandboxHTTPServer
from pipelines.sandbox.core.store import SandboxStore
from pipelines.sandbox.stripe.api import StripeHandler

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_small.json"
WORKSPACE = "test-saas"
DAY = 86400
SPEC_LIST_PATHS = ["/v1/customers", "/v1/subscriptions", "/v1/invoices", "/v1/prices", "/v1/products",
                   "/v1/events", "/v1/coupons"]
# A discount object: the fixture format has no list for discounts (fixtures.STRIPE_KINDS).
DISCOUNT = {
    "id": "di_Tsub01", "object": "discount", "checkout_session": None, "customer": "cus_T01sandbox",
    "customer_account": None, "end": None, "invoice": None, "invoice_item": None, "promotion_code": None,
    "source": {"type": "coupon", "coupon": "FOREVER20"}, "start": 1741305600, "subscription": "sub_Tactive01",
    "subscription_item": None,
}


def fixture_objects(key: str) -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())["workspaces"][WORKSPACE]["stripe"][key]


def newest_first(objects: list[dict[str, Any]]) -> list[str]:
    return [o["id"] for o in sorted(objects, key=lambda o: (o["created"], o["id"]), reverse=True)]


def open_store(path: Path) -> SandboxStore:
    store = SandboxStore.__new__(SandboxStore)
    try:
        SandboxStore.__init__(store, path)
    except sqlite3.OperationalError:
        # store.py creates its schema with executescript() inside transaction(); executescript
        # commits on its own, so the closing COMMIT fails although the schema is in place.
        pass
    return store


def loaded_store(path: Path) -> SandboxStore:
    """A store holding the fixture file plus the discount it cannot express."""
    store = open_store(path)
    load_fixtures(store, FIXTURE)
    store.put(WORKSPACE, "stripe", "discount", DISCOUNT["id"], created=DISCOUNT["start"], updated=DISCOUNT["start"],
              body=DISCOUNT)
    return store


@pytest.fixture
def store(tmp_path) -> SandboxStore:
    return loaded_store(tmp_path / "sandbox.db")


@contextmanager
def serving(store: SandboxStore) -> Iterator[SandboxHTTPServer]:
    """Run the Stripe handler alone (not server.Sandbox) and poll fast, so teardown takes no time."""
    server = SandboxHTTPServer(("127.0.0.1", 0), StripeHandler, store=store, faults=Faults.parse(None),
                               log=RequestLog(), advance=lambda payload: {}, truth=lambda: {})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(store):
    with serving(store) as server:
        yield server


@pytest.fixture
def api(server, store):
    """GET a path with the account's key; returns the `requests` response."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {store.accounts('stripe')[WORKSPACE]['api_key']}"

    def get(path: str, params: Any = None, **headers: str) -> requests.Response:
        return session.get(server.base_url + path, params=params, headers=headers, timeout=10)

    yield get
    session.close()


def page_all(api, path: str, params: dict[str, Any] | None = None, **headers: str) -> list[str]:
    ids: list[str] = []
    params = dict(params or {})
    while True:
        response = api(path, params, **headers)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [o["id"] for o in body["data"]]
        if not body["has_more"]:
            return ids
        params["starting_after"] = body["data"][-1]["id"]


def assert_error(response: requests.Response, status: int, *, code: str | None = None, param: str | None = None):
    assert response.status_code == status, response.text
    assert response.headers["Request-Id"].startswith("req_")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error.get("code") == code
    assert error.get("param") == param
    return error


# -- auth and errors -------------------------------------------------------------------------


def test_missing_key_is_401_in_stripes_shape(server):
    response = requests.get(server.base_url + "/v1/customers", timeout=10)
    error = assert_error(response, 401)
    assert error["message"].startswith("You did not provide an API key.")


def test_wrong_key_is_401_with_the_key_masked(server):
    response = requests.get(server.base_url + "/v1/customers", headers={"Authorization": "Bearer sk_test_wrongabcd"},
                            timeout=10)
    error = assert_error(response, 401)
    assert error["message"] == "Invalid API Key provided: sk_test_****abcd"


def test_basic_auth_with_the_key_as_user_is_accepted(server, store):
    key = store.accounts("stripe")[WORKSPACE]["api_key"]
    response = requests.get(server.base_url + "/v1/coupons", auth=(key, ""), timeout=10)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["data"]] == newest_first(fixture_objects("coupons"))


def test_unknown_ids_params_and_routes(api):
    error = assert_error(api("/v1/customers/cus_nope"), 404, code="resource_missing", param="id")
    assert error["message"] == "No such customer: 'cus_nope'"
    assert_error(api("/v1/customers", {"colour": "red"}), 400, param="colour")
    assert_error(api("/v1/customers", {"created[after]": "1"}), 400, param="created[after]")
    assert_error(api("/v1/customers", {"starting_after": "cus_nope"}), 404, code="resource_missing",
                 param="starting_after")
    assert_error(api("/v1/charges"), 404)


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_limit_out_of_range_is_400(api, limit):
    assert_error(api("/v1/customers", {"limit": limit}), 400, param="limit")


def test_limit_defaults_to_10_and_allows_100(api):
    assert len(api("/v1/prices").json()["data"]) == 10
    body = api("/v1/prices", {"limit": 100}).json()
    assert len(body["data"]) == len(fixture_objects("prices")) and body["has_more"] is False


# -- lists and paging ------------------------------------------------------------------------


def test_lists_are_newest_first_with_ties_by_id_and_skip_deleted(api):
    live = [c for c in fixture_objects("customers") if not c.get("deleted")]
    body = api("/v1/customers", {"limit": 100}).json()
    assert body["object"] == "list" and body["url"] == "/v1/customers"
    assert [c["id"] for c in body["data"]] == newest_first(live)
    tied = [c["id"] for c in body["data"] if c["id"] in ("cus_T04sandbox", "cus_T05sandbox", "cus_T06sandbox")]
    assert tied == ["cus_T06sandbox", "cus_T05sandbox", "cus_T04sandbox"]


def test_deleted_customer_retrieve_is_a_stub(api):
    assert api("/v1/customers/cus_T13sandbox").json() == {"id": "cus_T13sandbox", "object": "customer",
                                                          "deleted": True}


@pytest.mark.parametrize("path,key,params", [
    ("/v1/customers", "customers", {}),
    ("/v1/products", "products", {}),
    ("/v1/prices", "prices", {}),
    ("/v1/coupons", "coupons", {}),
    ("/v1/subscriptions", "subscriptions", {"status": "all"}),
    ("/v1/invoices", "invoices", {}),
    ("/v1/events", "events", {}),
])
def test_paging_returns_each_object_exactly_once(api, store, path, key, params):
    expected = newest_first([o for o in fixture_objects(key) if not o.get("deleted")
                             and (key != "events" or o["created"] >= store.clock - 30 * DAY)])
    assert page_all(api, path, {**params, "limit": 2}) == expected


def test_same_store_contents_give_identical_responses(api, tmp_path):
    other = loaded_store(tmp_path / "again.db")
    with requests.Session() as session, serving(other) as second:
        session.headers["Authorization"] = f"Bearer {other.accounts('stripe')[WORKSPACE]['api_key']}"
        for path, params in (("/v1/subscriptions", {"status": "all", "expand[]": "data.customer"}),
                             ("/v1/invoices", {"limit": 100}), ("/v1/events", {"limit": 100})):
            for version in stripe_versions.SUPPORTED:
                ours = api(path, params, **{"Stripe-Version": version})
                theirs = session.get(second.base_url + path, params=params,
                                     headers={"Stripe-Version": version}, timeout=10)
                assert ours.status_code == 200 and ours.headers["Request-Id"].startswith("req_")
                assert ours.content == theirs.content, (path, version)


def test_paging_backwards_with_ending_before(api):
    expected = newest_first(fixture_objects("prices"))
    body = api("/v1/prices", {"ending_before": expected[-1], "limit": 3}).json()
    assert [p["id"] for p in body["data"]] == expected[-4:-1] and body["has_more"] is True
    body = api("/v1/prices", {"ending_before": expected[2], "limit": 3}).json()
    assert [p["id"] for p in body["data"]] == expected[:2] and body["has_more"] is False


def test_paging_is_exact_while_objects_change(api, store):
    original = newest_first([c for c in fixture_objects("customers") if not c.get("deleted")])
    first = api("/v1/customers", {"limit": 4}).json()["data"]
    # Between pages: edit a customer already returned and one still to come, and add a new one.
    for customer_id, name in ((first[0]["id"], "Renamed early"), (original[-1], "Renamed late")):
        row = store.get(WORKSPACE, "stripe", "customer", customer_id)
        store.put(WORKSPACE, "stripe", "customer", row.id, created=row.created, updated=store.clock,
                  body={**row.body, "name": name})
    newcomer = {**first[0], "id": "cus_Tnewcomer", "created": store.clock}
    store.put(WORKSPACE, "stripe", "customer", newcomer["id"], created=store.clock, updated=store.clock,
              body=newcomer)
    rest_ids, params, last = [], {"limit": 4, "starting_after": first[-1]["id"]}, None
    while True:
        body = api("/v1/customers", params).json()
        rest_ids += [c["id"] for c in body["data"]]
        last = body["data"][-1] if body["data"] else last
        if not body["has_more"]:
            break
        params["starting_after"] = body["data"][-1]["id"]
    assert [c["id"] for c in first] + rest_ids == original
    assert last["id"] == original[-1] and last["name"] == "Renamed late"
    assert api("/v1/customers", {"limit": 1}).json()["data"][0]["id"] == "cus_Tnewcomer"


def test_created_filters(api):
    prices = fixture_objects("prices")
    pivot = sorted({p["created"] for p in prices})[1]
    cases = {
        "gte": lambda c: c >= pivot, "gt": lambda c: c > pivot, "lt": lambda c: c < pivot, "lte": lambda c: c <= pivot,
    }
    for op, keep in cases.items():
        ids = page_all(api, "/v1/prices", {f"created[{op}]": pivot, "limit": 100})
        assert ids == newest_first([p for p in prices if keep(p["created"])]), op
    exact = page_all(api, "/v1/prices", {"created": pivot})
    assert exact == newest_first([p for p in prices if p["created"] == pivot]) and exact
    assert_error(api("/v1/prices", {"created[gte]": "yesterday"}), 400, param="created[gte]")


def test_subscription_status_filter(api):
    subscriptions = fixture_objects("subscriptions")
    default = page_all(api, "/v1/subscriptions")
    assert default == newest_first([s for s in subscriptions if s["status"] != "canceled"])
    assert page_all(api, "/v1/subscriptions", {"status": "all"}) == newest_first(subscriptions)
    assert page_all(api, "/v1/subscriptions", {"status": "canceled"}) == ["sub_Tcanceled"]
    assert_error(api("/v1/subscriptions", {"status": "gone"}), 400, param="status")


# -- expand and embedded lists ---------------------------------------------------------------


def test_expand_on_lists_and_retrieves(api):
    body = api("/v1/subscriptions", {"expand[]": ["data.customer", "data.items.data.price.product",
                                                   "data.latest_invoice"], "status": "all", "limit": 100}).json()
    by_id = {s["id"]: s for s in body["data"]}
    active = by_id["sub_Tactive01"]
    assert active["customer"]["object"] == "customer" and active["customer"]["id"] == "cus_T01sandbox"
    assert active["items"]["data"][0]["price"]["product"]["name"] == "Basic"
    assert active["latest_invoice"]["id"] == "in_Tactive01" and by_id["sub_Tpastdue2"]["latest_invoice"] is None
    # stripe-python sends arrays as expand[0]=...; both spellings work.
    retrieved = api("/v1/subscriptions/sub_Tactive01", {"expand[0]": "discounts"}).json()
    assert retrieved["discounts"][0]["source"] == {"type": "coupon", "coupon": "FOREVER20"}
    products = {p["id"]: p for p in api("/v1/products", {"expand[]": "data.default_price"}).json()["data"]}
    assert products["prod_Tbasic"]["default_price"]["unit_amount"] == 1000
    assert products["prod_Taddons"]["default_price"] is None
    assert api("/v1/prices/price_Tbasicmonth", {"expand[]": "product"}).json()["product"]["id"] == "prod_Tbasic"
    assert_error(api("/v1/customers", {"expand[]": "data.email"}), 400, param="expand[0]")
    assert_error(api("/v1/invoices", {"expand[]": "data.customer.a.b.c.d"}), 400, param="expand[0]")


def test_embedded_lists_are_truncated_and_paged_separately(api):
    stored = next(s for s in fixture_objects("subscriptions") if s["id"] == "sub_Tmanyitem")["items"]["data"]
    items = api("/v1/subscriptions/sub_Tmanyitem").json()["items"]
    assert [i["id"] for i in items["data"]] == [i["id"] for i in stored[:10]]
    assert (items["has_more"], items["total_count"]) == (True, 12)
    assert items["url"] == "/v1/subscription_items?subscription=sub_Tmanyitem"
    rest = api("/v1/subscription_items", {"subscription": "sub_Tmanyitem", "starting_after": items["data"][-1]["id"]})
    assert [i["id"] for i in rest.json()["data"]] == [i["id"] for i in stored[10:]]
    assert_error(api("/v1/subscription_items"), 400, param="subscription")

    lines = next(i for i in fixture_objects("invoices") if i["id"] == "in_Tmanylines")["lines"]["data"]
    embedded = api("/v1/invoices/in_Tmanylines").json()["lines"]
    assert len(embedded["data"]) == 10 and embedded["has_more"] and embedded["total_count"] == 13
    assert page_all(api, embedded["url"], {"limit": 4}) == [line["id"] for line in lines]
    assert api("/v1/subscription_items/si_Tmanyitem12").json()["quantity"] == 12


# -- events ----------------------------------------------------------------------------------


def test_events_are_kept_30_days(api, store):
    events = fixture_objects("events")
    kept = [e for e in events if e["created"] >= store.clock - 30 * DAY]
    assert page_all(api, "/v1/events", {"limit": 3}) == newest_first(kept)
    assert_error(api("/v1/events/evt_Texpired01"), 404, code="resource_missing", param="id")
    store.set_clock(store.clock + 15 * DAY)
    later = [e for e in events if e["created"] >= store.clock - 30 * DAY]
    assert page_all(api, "/v1/events", {"limit": 100}) == newest_first(later)
    assert "evt_Tlegacy001" not in newest_first(later)
    assert api("/v1/events/evt_Tlegacy001").status_code == 404


def test_event_type_filters(api, store):
    kept = [e for e in fixture_objects("events") if e["created"] >= store.clock - 30 * DAY]
    customer_events = newest_first([e for e in kept if e["type"].startswith("customer.")])
    assert "evt_Tsubupd003" in customer_events  # the wildcard spans dots: customer.subscription.updated
    assert page_all(api, "/v1/events", {"type": "customer.*"}) == customer_events
    assert page_all(api, "/v1/events", {"types[]": ["invoice.paid", "price.created"]}) == [
        "evt_Tprice0005", "evt_Tlegacy001"]
    assert_error(api("/v1/events", {"type": "invoice.paid", "types[]": "invoice.paid"}), 400, param="types")


@pytest.mark.parametrize("requested", [stripe_versions.LATEST, stripe_versions.LEGACY])
def test_each_event_is_rendered_in_its_own_api_version(api, requested):
    legacy = api("/v1/events/evt_Tlegacy001", **{"Stripe-Version": requested}).json()
    invoice = legacy["data"]["object"]
    assert legacy["api_version"] == stripe_versions.LEGACY
    assert invoice["paid"] is True and invoice["subscription"] == "sub_Tactive01" and "parent" not in invoice
    assert invoice["lines"]["data"][0]["price"]["id"] == "price_Tbasicmonth"
    assert invoice["tax"] == 80 and invoice["discount"]["coupon"]["id"] == "FOREVER20"
    subscription = api("/v1/events/evt_Tlegacy002", **{"Stripe-Version": requested}).json()["data"]["object"]
    stored_item = fixture_objects("subscriptions")[0]["items"]["data"][0]
    assert subscription["current_period_end"] == stored_item["current_period_end"]
    assert "current_period_end" not in subscription["items"]["data"][0]
    current = api("/v1/events/evt_Tinvoice04", **{"Stripe-Version": requested}).json()["data"]["object"]
    assert current["parent"]["subscription_details"]["subscription"] == "sub_Tmanyitem" and "paid" not in current
    assert len(current["lines"]["data"]) == 10 and current["lines"]["has_more"] is True


# -- API versions ----------------------------------------------------------------------------


def test_stripe_version_header_picks_the_shape(api):
    latest = api("/v1/subscriptions/sub_Tactive01")
    assert latest.headers["Stripe-Version"] == stripe_versions.LATEST
    assert "current_period_end" not in latest.json() and latest.json()["discounts"] == ["di_Tsub01"]
    old = api("/v1/subscriptions/sub_Tactive01", **{"Stripe-Version": "2023-08-16"})
    assert old.headers["Stripe-Version"] == "2023-08-16"
    sub, item = old.json(), old.json()["items"]["data"][0]
    stored_item = fixture_objects("subscriptions")[0]["items"]["data"][0]
    assert (sub["current_period_start"], sub["current_period_end"]) == (
        stored_item["current_period_start"], stored_item["current_period_end"])
    assert "discounts" not in sub and sub["discount"]["coupon"]["percent_off"] == 20.0
    assert "current_period_end" not in item
    product = api("/v1/products/prod_Tbasic", **{"Stripe-Version": "2023-08-16"}).json()
    assert product["features"] == [{"name": "Dashboards"}, {"name": "Email support"}]
    assert "marketing_features" not in product
    assert_error(api("/v1/customers", **{"Stripe-Version": "2099-01-01"}), 400, param="Stripe-Version")


def test_legacy_line_items_rebuild_type_and_proration(api):
    lines = page_all(api, "/v1/invoices/in_Tmanylines/lines", {"limit": 100})
    body = api("/v1/invoices/in_Tmanylines/lines", {"limit": 100}, **{"Stripe-Version": "2023-08-16"}).json()
    assert [line["id"] for line in body["data"]] == lines
    proration = body["data"][-1]
    assert (proration["type"], proration["proration"], proration["invoice_item"]) == (
        "invoiceitem", True, "ii_Tproration1")
    first = body["data"][0]
    assert (first["type"], first["subscription_item"], first["price"]["id"]) == (
        "subscription", "si_Tmanyitem01", "price_Taddon01")


# -- rate limits, faults and the request log -------------------------------------------------


def test_rate_limit_answers_429_with_should_retry(api, store):
    account = store.accounts("stripe")[WORKSPACE]
    store.put_account(WORKSPACE, "stripe", {**account, "rate_limit_per_second": 5})
    statuses = [api("/v1/coupons") for _ in range(15)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and len(limited) < 15
    error = limited[0].json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
    assert limited[0].headers["Stripe-Should-Retry"] == "true" and limited[0].headers["Request-Id"]
    time.sleep(0.5)  # the bucket refills at 5 per second
    assert api("/v1/coupons").status_code == 200


def test_injected_faults(server, api):
    server.faults.rates = Faults.parse("stripe:429=1").rates
    response = api("/v1/customers")
    assert response.status_code == 429 and response.headers["Stripe-Should-Retry"] == "true"
    assert response.json()["error"]["code"] == "rate_limit"
    server.faults.rates = Faults.parse("5xx=1").rates
    responses = [api("/v1/customers") for _ in range(3)]
    assert sorted(r.status_code for r in responses) == [500, 502, 503]
    assert all(r.json()["error"]["type"] == "api_error" and r.headers["Stripe-Should-Retry"] == "true"
               for r in responses)
    server.faults.rates = {}
    assert api("/v1/customers").status_code == 200


def test_request_log_records_what_was_read(server, api, store):
    api("/v1/events", {"created[gt]": store.clock - 3 * DAY, "types[]": "customer.updated"},
        **{"Stripe-Version": "2023-08-16"})
    entry = server.log.entries(server="stripe")[-1]
    assert entry["workspace"] == WORKSPACE and entry["resource"] == "events"
    assert entry["filters"]["created"] == {"gt": store.clock - 3 * DAY, "gte": store.clock - 30 * DAY}
    assert entry["filters"]["types"] == ["customer.updated"]
    assert entry["stripe_version"] == "2023-08-16" and entry["returned"] == 1


# -- conformance with ../shared/reference ----------------------------------------------------

SHAPE_CLASSES = {
    "customer": "Customer", "product": "Product", "price": "Price", "coupon": "Coupon",
    "subscription": "Subscription", "subscription_item": "SubscriptionItem", "invoice": "Invoice",
    "line_item": "InvoiceLineItem", "event": "Event", "discount": "Discount", "plan": "Plan",
}


@pytest.fixture(scope="module")
def spec_validator(request):
    """A function validating JSON against a spec schema, given by `#/...` pointer."""
    reference = request.getfixturevalue("reference")
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    def nullable_to_any_of(node: Any) -> Any:
        # The spec marks enum/anyOf nodes `nullable: true`, which JSON Schema does not know.
        if isinstance(node, dict):
            node = {k: nullable_to_any_of(v) for k, v in node.items()}
            if node.pop("nullable", False):
                return {"anyOf": [node, {"type": "null"}]}
            return node
        if isinstance(node, list):
            return [nullable_to_any_of(v) for v in node]
        return node

    spec = nullable_to_any_of(json.loads((reference / "stripe" / "spec3-subset.json").read_text()))
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))

    def errors(instance: Any, pointer: str) -> list[str]:
        validator = Draft202012Validator({"$ref": "urn:spec" + pointer}, registry=registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(instance)]

    return errors


def test_legacy_list_responses_validate_against_the_spec(api, spec_validator):
    for path in SPEC_LIST_PATHS + ["/v1/invoices/in_Tmanylines/lines"]:
        params = {"limit": 100, **({"status": "all"} if path == "/v1/subscriptions" else {})}
        response = api(path, params, **{"Stripe-Version": "2023-08-16"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"], path
        spec_path = "/v1/invoices/{invoice}/lines" if path.endswith("/lines") else path
        pointer = "#/paths/" + spec_path.replace("~", "~0").replace("/", "~1") \
            + "/get/responses/200/content/application~1json/schema"
        assert spec_validator(body, pointer) == [], path


@pytest.mark.parametrize("path,schema", [
    ("/v1/customers/cus_T01sandbox", "customer"),
    ("/v1/customers/cus_T13sandbox", "deleted_customer"),
    ("/v1/products/prod_Tbasic", "product"),
    ("/v1/prices/price_Taddon03", "price"),
    ("/v1/coupons/ONCE5USD", "coupon"),
    ("/v1/subscriptions/sub_Tactive01?expand[]=customer&expand[]=latest_invoice", "subscription"),
    ("/v1/subscriptions/sub_Tmanyitem", "subscription"),
    ("/v1/invoices/in_Tactive01?expand[]=subscription", "invoice"),
    ("/v1/invoices/in_Tmanual01", "invoice"),
    ("/v1/events/evt_Tlegacy001", "event"),
    ("/v1/subscription_items/si_Tpastdue201", "subscription_item"),
])
def test_legacy_retrieves_validate_against_the_spec(api, spec_validator, path, schema):
    response = api(path, **{"Stripe-Version": "2023-08-16"})
    assert response.status_code == 200, response.text
    assert spec_validator(response.json(), f"#/components/schemas/{schema}") == []


def latest_shape_problems(node: Any, shapes: dict[str, Any], examples: dict[str, Any]) -> list[str]:
    """Keys unknown to stripe-python 16.1.0, or missing although fixtures3.json shows them, anywhere in `node`."""
    problems: list[str] = []
    if isinstance(node, list):
        for item in node:
            problems += latest_shape_problems(item, shapes, examples)
        return problems
    if not isinstance(node, dict):
        return problems
    kind = node.get("object")  # a string on API objects; event.data.object is itself an object
    if isinstance(kind, str) and kind in SHAPE_CLASSES and not node.get("deleted"):
        known = set(shapes[SHAPE_CLASSES[kind]]["fields"])
        # fixtures3.json is the 2026-07 release: keys stripe-python no longer has (invoice.subscription)
        # are not expected.
        expected = set(examples.get(kind, {})) & known
        problems += [f"{kind}.{k} unknown" for k in sorted(set(node) - known)]
        problems += [f"{kind}.{k} missing" for k in sorted(expected - set(node))]
    for key, value in node.items():
        if kind == "event" and key == "data" and node.get("api_version") != stripe_versions.LATEST:
            continue  # an older event's object is in its own version
        problems += latest_shape_problems(value, shapes, examples)
    return problems


def test_latest_version_matches_stripe_python_shapes_and_fixtures(api, reference):
    shapes = json.loads((reference / "stripe" / "stripe-python-16.1.0-shapes.json").read_text())["objects"]
    examples = json.loads((reference / "stripe" / "fixtures3.json").read_text())["resources"]
    bodies = [api(path, {"limit": 100, **({"status": "all"} if path == "/v1/subscriptions" else {})}).json()
              for path in SPEC_LIST_PATHS]
    bodies += [
        api("/v1/invoices/in_Tmanylines/lines", {"limit": 100}).json(),
        api("/v1/subscriptions", {"expand[]": ["data.customer", "data.discounts", "data.latest_invoice"]}).json(),
        api("/v1/subscription_items", {"subscription": "sub_Tmanyitem"}).json(),
    ]
    assert sum(len(b["data"]) for b in bodies) > 50
    assert latest_shape_problems(bodies, shapes, examples) == []


def test_legacy_rendering_leaves_the_stored_object_alone(store):
    stored = store.get(WORKSPACE, "stripe", "invoice", "in_Tactive01").body
    before = copy.deepcopy(stored)
    stripe_versions.render(stored, stripe_versions.LEGACY, lambda kind, id: None)
    assert stored == before
