"""The sandbox as a service: `abos sandbox serve`, determinism over HTTP, the clock, truth, caching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import requests

from pipelines.sandbox.server import Sandbox, build_store
from pipelines.sandbox.simulation import runner
from pipelines.sandbox.simulation.runner import truth
from pipelines.sandbox.simulation.simulator import iso

AS_OF = date(2026, 11, 20)
ABOS = str(Path(sys.executable).parent / "abos")

ORDERS_QUERY = """query($after: String) { orders(first: 25, after: $after, sortKey: ID) {
  pageInfo { hasNextPage endCursor }
  nodes { id name updatedAt test cancelledAt email totalPriceSet { shopMoney { amount currencyCode } }
          lineItems(first: 5) { nodes { id quantity originalUnitPriceSet { shopMoney { amount } } } } } } }"""


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("sandbox") / "tiny.sqlite", size="tiny", seed=7, as_of=AS_OF)


def _responses(sandbox: Sandbox) -> list[bytes]:
    """A fixed set of API calls; their raw bodies (headers such as Request-Id differ by design)."""
    info = sandbox.connection_info()
    shop = info["shopify"]["workspaces"]["demo-us-store"]
    stripe = info["stripe"]["workspaces"]["demo-saas"]
    bodies = []
    after = None
    for _ in range(3):  # three pages fit in the cost bucket without waiting for it to refill
        response = requests.post(
            f"{shop['base_url']}/admin/api/2026-10/graphql.json",
            json={"query": ORDERS_QUERY, "variables": {"after": after}},
            headers={"X-Shopify-Access-Token": shop["access_token"]},
            timeout=30,
        )
        payload = response.json()
        payload.pop("extensions", None)  # throttle state depends on wall-clock time
        bodies.append(json.dumps(payload, sort_keys=True).encode())
        after = payload["data"]["orders"]["pageInfo"]["endCursor"]
    for path in ("/v1/customers", "/v1/subscriptions?status=all", "/v1/invoices", "/v1/events"):
        sep = "&" if "?" in path else "?"
        response = requests.get(
            f"{stripe['base_url']}{path}{sep}limit=100", headers={"Authorization": f"Bearer {stripe['api_key']}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        bodies.append(response.content)
    return bodies


def test_same_seed_gives_identical_api_responses(tiny_store, tmp_path):
    twin = build_store(tmp_path / "twin.sqlite", size="tiny", seed=7, as_of=AS_OF)
    other = build_store(tmp_path / "other.sqlite", size="tiny", seed=8, as_of=AS_OF)
    with Sandbox(tiny_store) as first, Sandbox(twin) as second, Sandbox(other) as third:
        ours, theirs, different = _responses(first), _responses(second), _responses(third)
    assert len(ours) > 5
    assert ours == theirs
    assert ours != different


def test_store_is_reused_only_when_parameters_match(tiny_store, tmp_path):
    path = tmp_path / "cached.sqlite"
    build_store(path, size="tiny", seed=7, as_of=AS_OF).close()
    stamp = path.stat().st_mtime_ns
    messages = []
    build_store(path, size="tiny", seed=7, as_of=AS_OF, progress=messages.append).close()
    assert path.stat().st_mtime_ns == stamp and any("reusing" in m for m in messages)
    rebuilt = build_store(path, size="tiny", seed=9, as_of=AS_OF, progress=messages.append)
    assert rebuilt.get_meta("params")["seed"] == 9
    assert f"generating the tiny sandbox in {path} again: the file there has seed 7 (asked 9)" in messages
    assert not list(tmp_path.glob("*.partial*"))


def test_an_advanced_store_is_reused_as_advanced(tmp_path):
    """`abos sandbox advance` moved the clock of a finished store: serving it again keeps the advance
    (and what it changed) instead of simulating from scratch, and says so."""
    path = tmp_path / "advanced.sqlite"
    store = build_store(path, size="tiny", seed=7, as_of=AS_OF)
    finished = store.clock
    changed = runner.advance(store, days=3)["changed"]
    advanced = store.clock
    orders = store.query("demo-us-store", "shopify", "order", order_by="updated", updated={"gt": finished})
    store.close()
    assert advanced == finished + 3 * 86400 and changed["demo-us-store"]["order"] > 0 and orders

    messages = []
    again = build_store(path, size="tiny", seed=7, as_of=AS_OF, progress=messages.append)
    assert again.clock == advanced
    assert [o.id for o in again.query("demo-us-store", "shopify", "order", order_by="updated",
                                      updated={"gt": finished})] == [o.id for o in orders]
    assert messages == [f"reusing the tiny sandbox in {path}, advanced to {iso(advanced)}"]
    again.close()


def test_advancing_the_clock_changes_objects_and_the_truth(tmp_path):
    store = build_store(tmp_path / "advance.sqlite", size="tiny", seed=3, as_of=AS_OF)
    before = truth(store)
    with Sandbox(store) as sandbox:
        clock = requests.get(f"{sandbox.shopify_url}/_sandbox/clock", timeout=10).json()["clock"]
        result = requests.post(f"{sandbox.stripe_url}/_sandbox/advance", json={"days": 7}, timeout=120).json()
        assert requests.get(f"{sandbox.shopify_url}/_sandbox/clock", timeout=10).json()["clock"] == clock + 7 * 86400
        assert requests.post(f"{sandbox.shopify_url}/_sandbox/advance", json={"days": -1}, timeout=10).status_code == 400
        after = requests.get(f"{sandbox.shopify_url}/_sandbox/truth", timeout=120).json()
    assert result["changed"]["demo-us-store"]["order"] > 0
    assert result["changed"]["demo-saas"]
    assert after["workspaces"]["demo-us-store"]["counts"]["orders"] > before["workspaces"]["demo-us-store"]["counts"]["orders"]
    assert after["workspaces"]["demo-saas"]["counts"]["invoices"] > before["workspaces"]["demo-saas"]["counts"]["invoices"]
    # Orders changed by the advance carry updatedAt values inside the advanced week.
    changed = store.query("demo-us-store", "shopify", "order", order_by="updated", updated={"gt": clock})
    assert changed and all(clock < o.updated <= clock + 7 * 86400 for o in changed)


def test_serve_command_prints_connection_info_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "ABOS_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        [ABOS, "sandbox", "serve", "--size", "tiny", "--seed", "5", "--as-of", AS_OF.isoformat(),
         "--shopify-port", "0", "--stripe-port", "0", "--faults", "stripe:5xx=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        info = json.loads(process.stdout.readline())
        shop = info["shopify"]["workspaces"]["demo-br-store"]
        token = requests.post(
            f"{shop['base_url']}/admin/oauth/access_token",
            data={"grant_type": "client_credentials", "client_id": shop["client_id"],
                  "client_secret": shop["client_secret"]},
            timeout=10,
        ).json()["access_token"]
        response = requests.post(
            f"{shop['base_url']}/admin/api/2026-10/graphql.json", json={"query": "{ shop { currencyCode ianaTimezone } }"},
            headers={"X-Shopify-Access-Token": token}, timeout=10,
        )
        assert response.json()["data"]["shop"] == {"currencyCode": "BRL", "ianaTimezone": "America/Sao_Paulo"}
        stripe = info["stripe"]["workspaces"]["demo-saas"]
        customers = requests.get(f"{stripe['base_url']}/v1/customers", auth=(stripe["api_key"], ""), timeout=10)
        assert customers.status_code == 200 and customers.json()["object"] == "list"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_bad_fault_spec_is_refused_with_the_syntax(tmp_path):
    env = {**os.environ, "ABOS_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [ABOS, "sandbox", "serve", "--fixtures", str(Path(__file__).parents[1] / "fixtures" / "stripe_small.json"),
         "--faults", "503=0.1"], capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 2
    assert "[server:]kind=share" in result.stderr


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _selection(items: list, gql_type, schema) -> str:
    """A GraphQL selection asking for exactly the keys the fixture objects have.

    Connections ask for as many nodes as the fixture holds (bigger pages would exceed the cost
    limit); fields of a concrete type behind an interface or union go in inline fragments.
    """
    from graphql import GraphQLObjectType, get_named_type, is_composite_type

    named = get_named_type(gql_type)
    values_by_field: dict[tuple[str | None, str], list] = {}
    typename = False
    for item in items:
        for key, value in item.items():
            if key == "__typename":
                typename = True
                continue
            own = isinstance(named, GraphQLObjectType) or key in getattr(named, "fields", {})
            values_by_field.setdefault((None if own else item["__typename"], key), []).append(value)
    parts, fragments = (["__typename"] if typename else []), {}
    for (owner, key), values in values_by_field.items():
        field = (named if owner is None else schema.get_type(owner)).fields[key]
        field_type = get_named_type(field.type)
        present = [v for v in values if v]
        if field_type.name.endswith("Connection"):
            nodes = [node for v in present for node in v]
            inner = _selection(nodes, field_type.fields["nodes"].type, schema) if nodes else "__typename"
            text = f"{key}(first: {max([len(v) for v in present] or [1])}) {{ nodes {{ {inner} }} }}"
        elif is_composite_type(field_type):
            nested = [n for v in present for n in (v if isinstance(v, list) else [v])]
            text = f"{key} {{ {_selection(nested, field.type, schema) if nested else '__typename'} }}"
        else:
            text = key
        (parts if owner is None else fragments.setdefault(owner, [])).append(text)
    return " ".join(parts + [f"... on {name} {{ {' '.join(texts)} }}" for name, texts in fragments.items()])


def _unwrap(value: object) -> object:
    """A GraphQL response with connections turned back into plain lists (the fixture's form)."""
    if isinstance(value, dict):
        if set(value) == {"nodes"}:
            return [_unwrap(v) for v in value["nodes"]]
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def test_fixture_mode_serves_exactly_the_fixture(tmp_path):
    from graphql import build_schema, get_named_type

    from pipelines.sandbox.shopify.api import SCHEMA_PATH

    schema = build_schema(SCHEMA_PATH.read_text())
    shop_doc = json.loads((FIXTURES / "shopify_small.json").read_text())
    stripe_doc = json.loads((FIXTURES / "stripe_small.json").read_text())
    with Sandbox(build_store(tmp_path / "shop.sqlite", fixtures=FIXTURES / "shopify_small.json")) as shop_box:
        for workspace, spec in shop_doc["workspaces"].items():
            creds = shop_box.connection_info()["shopify"]["workspaces"][workspace]
            for key in ("customers", "products", "orders"):
                expected = spec["shopify"][key]
                root = get_named_type(schema.query_type.fields[key].type).fields["nodes"].type
                query = f"{{ {key}(first: {len(expected)}, sortKey: ID) {{ nodes {{ {_selection(expected, root, schema)} }} }} }}"
                response = requests.post(
                    f"{creds['base_url']}/admin/api/2026-10/graphql.json", json={"query": query},
                    headers={"X-Shopify-Access-Token": creds["access_token"]}, timeout=30,
                ).json()
                assert "errors" not in response, response
                served = _unwrap(response["data"][key])
                # Fields a fixture object lacks come back as null; compare only what it has.
                trimmed = [{k: v for k, v in s.items() if k in e} for s, e in zip(served, sorted(expected, key=lambda o: o["id"]))]
                assert trimmed == sorted(expected, key=lambda o: o["id"])
    with Sandbox(build_store(tmp_path / "stripe.sqlite", fixtures=FIXTURES / "stripe_small.json")) as stripe_box:
        for workspace, spec in stripe_doc["workspaces"].items():
            creds = stripe_box.connection_info()["stripe"]["workspaces"][workspace]
            for key, path in (("customers", "/v1/customers"), ("products", "/v1/products"), ("prices", "/v1/prices"),
                              ("coupons", "/v1/coupons"), ("subscriptions", "/v1/subscriptions?status=all"),
                              ("invoices", "/v1/invoices")):
                sep = "&" if "?" in path else "?"
                served = requests.get(f"{creds['base_url']}{path}{sep}limit=100",
                                      headers={"Authorization": f"Bearer {creds['api_key']}"}, timeout=30).json()
                assert served["has_more"] is False
                expected = {o["id"]: o for o in spec["stripe"][key] if not o.get("deleted")}
                assert {o["id"] for o in served["data"]} == set(expected)
                for obj in served["data"]:
                    original = expected[obj["id"]]
                    for embedded in ("items", "lines"):  # Stripe embeds at most 10; the rest is paged
                        if embedded in original and original[embedded]["has_more"] is False and len(original[embedded]["data"]) > 10:
                            obj, original = dict(obj), dict(original)
                            assert obj[embedded]["data"] == original[embedded]["data"][:10]
                            obj.pop(embedded), original.pop(embedded)
                    assert obj == original
