"""The sandbox's webhooks: when its clock advances it signs and delivers what changed, as Shopify and
Stripe do, with retries, and can be told to misbehave (docs/sandbox.md, "Webhooks").

- Shopify: `orders/create|updated`, `customers/create|update`, `products/create|update` for every
  order, customer and product whose `updatedAt` moved, with the REST-shaped body; headers
  X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of the body with the app's client secret), -Topic,
  -Shop-Domain, -Webhook-Id (the same on every retry), -Triggered-At, -API-Version. The compliance
  topics are sent on request (`send_compliance`), and `orders/delete`, `products/delete` or
  `customers/delete` with a deletion (`delete`).
- Stripe: every event created in the advanced window, as stored; Stripe-Signature `t=<now>,v1=<hex>`
  over "{t}.{body}" with the endpoint secret, signed again on each retry.

A delivery that gets no 2xx is retried on `retry_delays` (seconds of real time: the real providers
space retries over hours, Shopify 8 tries in 4 hours, Stripe up to 3 days; the sandbox compresses
that) with the original payload. Signing is written here from the providers' documentation,
independently of the gateway's verification, so a bug in one is not mirrored in the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pipelines.sandbox.core.times import iso
from pipelines.sandbox.core.store import SandboxStore

SHOPIFY_KINDS = {"order": ("orders/create", "orders/updated"), "customer": ("customers/create", "customers/update"),
                 "product": ("products/create", "products/update")}
DELETABLE = {"Order": "order", "Product": "product", "Customer": "customer"}  # global id type -> store kind
MISBEHAVIOURS = ("bad_signature", "stale", "replay", "duplicate", "out_of_order")
DEFAULT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
STALE_SECONDS = 600  # beyond Stripe's 300 s window


def stripe_webhook_secret(workspace: str) -> str:
    """The sandbox Stripe account's endpoint signing secret (sandbox-only, derived from the workspace)."""
    return f"whsec_sandbox_{workspace.replace('-', '_')}"


@dataclass
class Delivery:
    """One webhook to deliver: where, what, and how it has gone so far."""

    workspace: str
    source: str
    url: str
    delivery_id: str  # Shopify's webhook id, Stripe's event id
    topic: str
    body: bytes
    secret: str
    kind: str = "genuine"  # genuine, duplicate, replay, bad_signature, stale
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # a replay resends these exact headers


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def rest_shape(value: Any) -> Any:
    """A GraphQL node as Shopify's REST webhook bodies show it: snake_case keys, numeric `id` and
    `admin_graphql_api_id` for the global id."""
    if isinstance(value, list):
        return [rest_shape(item) for item in value]
    if not isinstance(value, dict):
        return value
    shaped = {_snake(key): rest_shape(item) for key, item in value.items() if key != "id"}
    if isinstance(value.get("id"), str) and value["id"].startswith("gid://"):
        shaped = {"id": int(value["id"].rsplit("/", 1)[1]), "admin_graphql_api_id": value["id"], **shaped}
    elif "id" in value:
        shaped = {"id": value["id"], **shaped}
    return shaped


def parse_misbehaviour(spec: str | None) -> dict[str, float]:
    """`duplicate=0.2,out_of_order=1`: the share of deliveries each misbehaviour applies to."""
    shares = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        name, _, share = item.strip().partition("=")
        if name not in MISBEHAVIOURS:
            raise ValueError(f"unknown webhook misbehaviour {name!r}; use {', '.join(MISBEHAVIOURS)}")
        value = float(share or 1)
        if not 0 <= value <= 1:
            raise ValueError(f"webhook misbehaviour share {item!r} must be between 0 and 1")
        shares[name] = value
    return shares


class WebhookSender:
    """Subscriptions per workspace, a queue of deliveries, and the threads that deliver and retry them."""

    def __init__(self, store: SandboxStore, *, seed: int = 0, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
                 workers: int = 8, timeout: float = 5.0):
        self.store = store
        self.retry_delays = retry_delays
        self.timeout = timeout
        self.subscriptions: dict[tuple[str, str], str] = {}  # (source, workspace) -> URL
        self.misbehaviour: dict[str, float] = {}
        self.log: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="sandbox-webhook")
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._timers: set[threading.Timer] = set()

    # -- configuration ---------------------------------------------------------------------------

    def subscribe(self, base_url: str, workspaces: list[str] | None = None) -> dict[str, str]:
        """Send every (or the listed) workspace's webhooks to `<base_url>/webhooks/<source>/<workspace>`."""
        added = {}
        for source in ("shopify", "stripe"):
            for workspace in self.store.accounts(source):
                if workspaces is None or workspace in workspaces:
                    url = f"{base_url.rstrip('/')}/webhooks/{source}/{workspace}"
                    self.subscriptions[(source, workspace)] = added[f"{source}/{workspace}"] = url
        return added

    def misbehave(self, spec: str | None) -> None:
        self.misbehaviour = parse_misbehaviour(spec)

    # -- what changed -----------------------------------------------------------------------------

    def changed(self, since: int, until: int) -> int:
        """Queue the webhooks for what changed in `(since, until]`; returns how many were queued."""
        deliveries = []
        for (source, workspace), url in sorted(self.subscriptions.items()):
            if source == "shopify":
                deliveries += self._shopify_changes(workspace, url, since, until)
            else:
                deliveries += self._stripe_events(workspace, url, since, until)
        self._enqueue(deliveries)
        return len(deliveries)

    def _shopify_changes(self, workspace: str, url: str, since: int, until: int) -> list[Delivery]:
        account = self.store.accounts("shopify")[workspace]
        found = []
        for kind, (created_topic, updated_topic) in SHOPIFY_KINDS.items():
            for obj in self.store.query(workspace, "shopify", kind, order_by="updated",
                                        updated={"gt": since, "lte": until}):
                topic = created_topic if obj.created > since else updated_topic
                body = json.dumps(rest_shape(obj.body), separators=(",", ":")).encode()
                webhook_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{workspace}/{topic}/{obj.id}/{obj.updated}"))
                found.append(Delivery(workspace, "shopify", url, webhook_id, topic, body, account["client_secret"],
                                      headers={"X-Shopify-Triggered-At": iso(obj.updated),
                                               "X-Shopify-Shop-Domain": f"{account['shop']}.myshopify.com"}))
        return found

    def _stripe_events(self, workspace: str, url: str, since: int, until: int) -> list[Delivery]:
        events = self.store.query(workspace, "stripe", "event", created={"gt": since, "lte": until})
        return [Delivery(workspace, "stripe", url, e.id, e.body["type"],
                         json.dumps(e.body, separators=(",", ":")).encode(), stripe_webhook_secret(workspace))
                for e in events]

    def send_compliance(self, workspace: str, topic: str, customer_id: str | None = None) -> Delivery:
        """Send a Shopify compliance webhook: customers/data_request, customers/redact (for one
        customer and their orders) or shop/redact."""
        if topic not in ("customers/data_request", "customers/redact", "shop/redact"):
            raise ValueError(f"{topic!r} is not a compliance topic")
        url = self.subscriptions.get(("shopify", workspace))
        if url is None:
            raise ValueError(f"no webhook subscription for Shopify workspace {workspace!r}")
        account = self.store.accounts("shopify")[workspace]
        shop_id = int(hashlib.blake2b(workspace.encode(), digest_size=4).hexdigest(), 16)
        payload: dict[str, Any] = {"shop_id": shop_id, "shop_domain": f"{account['shop']}.myshopify.com"}
        if topic != "shop/redact":
            customer = self.store.get(workspace, "shopify", "customer", customer_id or "")
            if customer is None:
                raise ValueError(f"no customer {customer_id!r} in {workspace}")
            orders = [o.body["id"] for o in self.store.iter_objects(workspace, "shopify", "order")
                      if (o.body.get("customer") or {}).get("id") == customer_id]
            payload["customer"] = {"id": int(customer_id.rsplit("/", 1)[1]), "email": customer.body.get("email"),
                                   "phone": customer.body.get("phone")}
            key = "orders_requested" if topic == "customers/data_request" else "orders_to_redact"
            payload[key] = [int(gid.rsplit("/", 1)[1]) for gid in orders]
            if topic == "customers/data_request":
                payload["data_request"] = {"id": int(time.time())}
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery = Delivery(workspace, "shopify", url, str(uuid.uuid4()), topic, body, account["client_secret"],
                            headers={"X-Shopify-Shop-Domain": payload["shop_domain"]})
        self._enqueue([delivery])
        return delivery

    def delete(self, workspace: str, object_id: str) -> Delivery | None:
        """Delete a Shopify order, product or customer (`gid://shopify/Order/1`...; a merchant deleting
        it in the admin): gone from the API, and an `orders/delete`, `products/delete` or
        `customers/delete` webhook (body `{"id": <number>}`, as Shopify sends it) to the workspace's
        subscription, if any."""
        type_name = object_id.removeprefix("gid://shopify/").partition("/")[0]
        kind = DELETABLE.get(type_name)
        found = self.store.get(workspace, "shopify", kind, object_id) if kind else None
        if found is None or found.deleted:
            raise ValueError(f"no order, product or customer {object_id!r} in {workspace}")
        self.store.put(workspace, "shopify", kind, object_id, created=found.created,
                       updated=max(found.updated, self.store.clock), body=found.body, deleted=True)
        url = self.subscriptions.get(("shopify", workspace))
        if url is None:
            return None
        account = self.store.accounts("shopify")[workspace]
        body = json.dumps({"id": int(object_id.rsplit("/", 1)[1])}, separators=(",", ":")).encode()
        delivery = Delivery(workspace, "shopify", url, str(uuid.uuid4()), f"{kind}s/delete", body,
                            account["client_secret"],
                            headers={"X-Shopify-Shop-Domain": f"{account['shop']}.myshopify.com"})
        self._enqueue([delivery])
        return delivery

    # -- delivering -------------------------------------------------------------------------------

    def _enqueue(self, deliveries: list[Delivery]) -> None:
        """Add the misbehaviours asked for, then hand everything to the delivery threads."""
        shares = self.misbehaviour
        queued = []
        for delivery in deliveries:
            if self._draw("bad_signature"):  # a forgery: signed with a key that is not the endpoint's
                queued.append(Delivery(**{**delivery.__dict__, "kind": "bad_signature",
                                          "secret": "forged-" + delivery.secret, "headers": dict(delivery.headers)}))
            if delivery.source == "stripe" and self._draw("stale"):
                queued.append(Delivery(**{**delivery.__dict__, "kind": "stale", "headers": dict(delivery.headers)}))
            queued.append(delivery)
            if self._draw("duplicate"):
                queued.append(Delivery(**{**delivery.__dict__, "kind": "duplicate", "headers": dict(delivery.headers)}))
            if self._draw("replay"):
                queued.append(Delivery(**{**delivery.__dict__, "kind": "replay", "headers": delivery.headers}))
        if shares.get("out_of_order"):
            with self._lock:
                self._rng.shuffle(queued)
        for delivery in queued:
            # A replay comes after the delivery it copies, so it carries that delivery's signature.
            self._submit(delivery, 1.0 if delivery.kind == "replay" else 0.0)

    def _draw(self, name: str) -> bool:
        share = self.misbehaviour.get(name, 0.0)
        with self._lock:
            return share > 0 and self._rng.random() < share

    def _submit(self, delivery: Delivery, delay: float) -> None:
        with self._lock:
            self._in_flight += 1
        if delay <= 0:
            self._pool.submit(self._attempt, delivery)
            return
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._pool.submit(self._attempt, delivery)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _headers(self, delivery: Delivery) -> dict[str, str]:
        if delivery.kind == "replay" and "Stripe-Signature" in delivery.headers:
            return dict(delivery.headers)  # a captured request sent again byte for byte
        headers = {"Content-Type": "application/json", "User-Agent": "sandbox-webhooks"}
        if delivery.source == "shopify":
            secret = delivery.secret.encode()
            digest = base64.b64encode(hmac.new(secret, delivery.body, hashlib.sha256).digest()).decode()
            headers.update({"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": delivery.topic,
                            "X-Shopify-Webhook-Id": delivery.delivery_id, "X-Shopify-API-Version": "2026-10",
                            "X-Shopify-Event-Id": delivery.delivery_id, **delivery.headers})
            return headers
        t = int(time.time()) - (STALE_SECONDS if delivery.kind == "stale" else 0)
        signature = hmac.new(delivery.secret.encode(), f"{t}.".encode() + delivery.body, hashlib.sha256).hexdigest()
        headers["Stripe-Signature"] = f"t={t},v1={signature}"
        delivery.headers.update(headers)  # what a replay of this delivery resends
        return headers

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        started = time.monotonic()
        request = urllib.request.Request(delivery.url, data=delivery.body, method="POST",
                                         headers=self._headers(delivery))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None  # refused, reset or timed out
        entry = {"workspace": delivery.workspace, "source": delivery.source, "topic": delivery.topic,
                 "delivery_id": delivery.delivery_id, "kind": delivery.kind, "attempt": delivery.attempts,
                 "status": status, "ms": round((time.monotonic() - started) * 1000, 1), "time": time.time()}
        # Only genuine deliveries (and their duplicates) are retried: forgeries and replays are one-off.
        retry = (status is None or not 200 <= status < 300) and delivery.kind in ("genuine", "duplicate") \
            and delivery.attempts <= len(self.retry_delays)
        with self._lock:
            self.log.append(entry)
        if retry:
            self._submit(delivery, self.retry_delays[delivery.attempts - 1])
        with self._lock:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every queued delivery and retry has finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
