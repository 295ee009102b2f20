"""Fixture mode: serve the objects of a JSON file instead of the simulator.

Format (docs/sandbox.md has an example)::

    {"clock": "2026-03-31T23:59:59Z",            # optional; default: the newest timestamp
     "workspaces": {"<id>": {
         "name": "...", "currency": "USD", "timezone": "America/New_York",
         "shopify": {"orders": [...], "products": [...], "customers": [...]},
         "stripe": {"customers": [...], "products": [...], "prices": [...], "coupons": [...],
                    "subscriptions": [...], "invoices": [...], "events": [...],
                    "discounts": [...]}}},
     "ecb": {"2026-03-02": {"USD": "1.2060", "KWD": "0.3712"}}}   # optional: ECB rates from that day on

A workspace may also name a `reporting_currency` other than its `currency` (the shop's or the
Stripe account's own); a tenant matrix (simulation/matrix.py) adds a "matrix" key with its tenants.

Each Stripe object is exactly what Stripe's API returns (embedded lists complete). Each Shopify
object is the GraphQL node, with nested connections as plain lists.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.sandbox.core.accounts import shopify_account, stripe_account
from pipelines.sandbox.core.times import iso, parse_iso
from pipelines.sandbox.core.store import SandboxStore

SHOPIFY_KINDS = {"orders": "order", "products": "product", "customers": "customer"}
STRIPE_KINDS = {
    "customers": "customer",
    "products": "product",
    "prices": "price",
    "coupons": "coupon",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "events": "event",
    "discounts": "discount",  # not listable in Stripe; here so `expand[]=discounts` can resolve them
}


class FixtureError(ValueError):
    """A fixture file that cannot be served; the message names the file and the object."""


def load_fixtures(store: SandboxStore, path: str | Path) -> dict[str, int]:
    """Load a fixture file into an empty store. Returns object counts by `workspace/source/kind`."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{path}: cannot read fixture file: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("workspaces"), dict):
        raise FixtureError(f"{path}: expected an object with a 'workspaces' mapping")
    counts: dict[str, int] = {}
    newest = 0
    for workspace, spec in doc["workspaces"].items():
        name = spec.get("name", workspace)
        currency = spec.get("currency", "USD")
        timezone = spec.get("timezone", "UTC")
        if "shopify" in spec:
            store.put_account(workspace, "shopify", shopify_account(workspace, name, currency, timezone))
            for key, objects in spec["shopify"].items():
                if key not in SHOPIFY_KINDS:
                    raise FixtureError(f"{path}: workspaces.{workspace}.shopify.{key} is not one of "
                                       + ", ".join(SHOPIFY_KINDS))
                rows = []
                for index, node in enumerate(objects):
                    where = f"{path}: workspaces.{workspace}.shopify.{key}[{index}]"
                    try:
                        created = parse_iso(node["createdAt"])
                        updated = parse_iso(node.get("updatedAt") or node["createdAt"])
                        rows.append((workspace, "shopify", SHOPIFY_KINDS[key], node["id"], created, updated,
                                     False, node))
                    except (KeyError, TypeError, ValueError) as exc:
                        raise FixtureError(f"{where}: needs 'id' and ISO 'createdAt' ({exc!r})") from exc
                    newest = max(newest, updated)
                store.put_many(rows)
                counts[f"{workspace}/shopify/{SHOPIFY_KINDS[key]}"] = len(rows)
        if "stripe" in spec:
            store.put_account(workspace, "stripe", stripe_account(workspace, name, currency, timezone))
            for key, objects in spec["stripe"].items():
                if key not in STRIPE_KINDS:
                    raise FixtureError(f"{path}: workspaces.{workspace}.stripe.{key} is not one of "
                                       + ", ".join(STRIPE_KINDS))
                rows = []
                for index, obj in enumerate(objects):
                    where = f"{path}: workspaces.{workspace}.stripe.{key}[{index}]"
                    if obj.get("object") != STRIPE_KINDS[key]:
                        raise FixtureError(f"{where}: 'object' must be {STRIPE_KINDS[key]!r}")
                    try:
                        created = int(obj["created"])
                    except (KeyError, TypeError, ValueError) as exc:
                        raise FixtureError(f"{where}: needs 'id' and integer 'created'") from exc
                    rows.append((workspace, "stripe", STRIPE_KINDS[key], obj["id"], created, created,
                                 bool(obj.get("deleted")), obj))
                    newest = max(newest, created)
                store.put_many(rows)
                counts[f"{workspace}/stripe/{STRIPE_KINDS[key]}"] = len(rows)
    clock = parse_iso(doc["clock"]) if doc.get("clock") else newest
    # The ECB rates the fixture lists, by day (pipelines/sandbox/ecb.py); none means FIXTURE_RATES.
    ecb = doc.get("ecb", {})
    # A tenant matrix (pipelines/sandbox/simulation/matrix.py) carries its tenants, from which `truth` recomputes.
    store.set_meta("fixture", {"path": str(path), "clock": iso(clock), "ecb": ecb, "matrix": doc.get("matrix")})
    store.set_clock(clock)
    return counts
