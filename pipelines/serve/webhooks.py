"""Webhook ingress: verify a provider's signature, write the delivery to the inbox, answer.

No business logic runs here (docs/webhooks.md): a verified delivery is written to `webhooks.inbox`
and answered 200, a duplicate too; the sensor re-fetches what it names. The workspace comes from
the URL only. Every refusal that concerns a workspace (unknown, wrong provider, bad or stale
signature, another shop's domain) is the same 401 after the same work, so the answers do not tell
which workspaces exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines import inbox
from pipelines.warehouse import Warehouse
from pipelines.workspaces import WEBHOOK_SECRETS, Workspaces

PROVIDERS = ("shopify", "stripe")
STRIPE_TOLERANCE_SECONDS = 300  # Stripe's libraries' default window for the signed timestamp
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
KEYS_PER_ENDPOINT = len(WEBHOOK_SECRETS)  # the current and the previous secret
DEFAULT_LOCK_TIMEOUT_SECONDS = 3.0  # below Shopify's 5 s delivery timeout: a 503 beats a timeout
log = logging.getLogger("abos.webhooks")


def _denied() -> Response:
    return JSONResponse({"error": "unauthorized"}, status_code=401)


@dataclass(frozen=True)
class Endpoint:
    """What the gateway knows about one workspace's endpoint: its signing secrets, current first."""

    workspace_id: str
    provider: str
    secrets: tuple[bytes, ...]
    shop_domain: str | None = None


def endpoints(workspaces: Workspaces, env: dict[str, str] | None = None) -> dict[tuple[str, str], Endpoint]:
    """The endpoints of every workspace whose connector has a webhook secret set, by (provider, workspace)."""
    env = dict(os.environ if env is None else env)
    found = {}
    for workspace in workspaces:
        for provider, connector in workspace.connectors.items():
            keys = tuple(secret.encode() for secret in connector.webhook_secrets(env))
            if keys:
                # Every endpoint checks the same number of keys (random ones fill in), so the time a
                # check takes tells nothing about a workspace's configuration either.
                keys += tuple(secrets.token_bytes(32) for _ in range(KEYS_PER_ENDPOINT - len(keys)))
                found[(provider, workspace.id)] = Endpoint(workspace.id, provider, keys, connector.shop_domain)
    return found


def shopify_signature_valid(body: bytes, header: str | None, keys: tuple[bytes, ...]) -> bool:
    """X-Shopify-Hmac-SHA256: base64 of HMAC-SHA256 over the raw body, keyed with the app's client secret."""
    try:
        sent = base64.b64decode(header or "", validate=True)
    except (binascii.Error, ValueError):
        sent = b""
    valid = False
    for key in keys:  # every key is tried, so the time taken does not depend on which one matched
        valid |= hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), sent)
    return valid


def stripe_signature_valid(body: bytes, header: str | None, keys: tuple[bytes, ...], now: float,
                           tolerance: int = STRIPE_TOLERANCE_SECONDS) -> bool:
    """Stripe-Signature `t=<unix>,v1=<hex>[,v1=...]`: HMAC-SHA256 of "{t}.{body}" with the endpoint's
    secret, any v1 matching any key, and t within `tolerance` seconds of now (either side)."""
    timestamp, signatures = None, []
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and timestamp is None:
            timestamp = value
        elif name == "v1":
            signatures.append(value.encode())
    if timestamp is None or not timestamp.isdigit() or not signatures:
        return False
    signed = timestamp.encode() + b"." + body
    valid = False
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest().encode()
        for signature in signatures:
            valid |= hmac.compare_digest(expected, signature)
    return valid and abs(now - int(timestamp)) <= tolerance


class InboxWriter:
    """Writes deliveries to the inbox in batches (group commit): a request waits for the commit that
    holds its delivery, and the deliveries that arrive during one commit go into the next.

    It keeps its connection between batches, since opening one costs more than the insert:
    - Postgres: a connection that fails (Postgres restarted) is replaced once at once, then the batch
      fails (503) and the next batch connects again.
    - DuckDB: one process writes the file at a time, so the writer holds the warehouse's write lock
      with the file open only while deliveries keep coming: it lets both go when no delivery arrives
      for `LINGER_SECONDS` after a commit, or at once when another process waits for the lock
      (dlt, dbt, the webhook sensor), and takes them again for the next batch.
    """

    LINGER_SECONDS = 0.05

    def __init__(self, warehouse: Warehouse, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS):
        self.warehouse = warehouse
        self.lock_timeout = lock_timeout
        self._connection = None  # used by one batch at a time
        self._held: contextlib.ExitStack | None = None  # DuckDB: the write lock and the open file
        self._pending: list[tuple[inbox.Delivery, asyncio.Future]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def put(self, delivery: inbox.Delivery) -> None:
        """Return once the delivery is committed; raise when the warehouse could not take it."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            if self._connection is not None and self.warehouse.kind == "duckdb":
                try:  # the file stays open only while deliveries keep coming
                    await asyncio.wait_for(self._wake.wait(), self.LINGER_SECONDS)
                except TimeoutError:
                    await asyncio.to_thread(self._drop_connection)
                    continue
            else:
                await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self._write, [delivery for delivery, _ in batch])
            except Exception as exc:  # any failure to commit means "not stored": the provider retries
                log.warning("webhook inbox unavailable: %s", type(exc).__name__)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(WarehouseUnavailable())
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, deliveries: list[inbox.Delivery]) -> None:
        for attempt in (1, 2):
            fresh = self._connection is None
            if fresh:
                self._connect()
            try:
                inbox.write(self.warehouse, deliveries, connection=self._connection)
            except Exception:
                self._drop_connection()
                if fresh or attempt == 2:
                    raise
                continue
            if self.warehouse.others_waiting():
                self._drop_connection()
            return

    def _connect(self) -> None:
        if self.warehouse.kind == "postgres":
            self._connection = self.warehouse.postgres_connection()
            return
        held = contextlib.ExitStack()
        try:
            held.enter_context(self.warehouse.write_lock(timeout=self.lock_timeout))
            self._connection = held.enter_context(contextlib.closing(self.warehouse.duckdb_connection()))
            self._connection.execute("set threads = 1")  # small inserts: more threads only cost CPU
        except BaseException:
            held.close()
            raise
        self._held = held

    def _drop_connection(self) -> None:
        """Close the connection (on DuckDB: the file, and let go of the write lock)."""
        connection, self._connection = self._connection, None
        held, self._held = self._held, None
        try:
            if held is not None:
                held.close()
            elif connection is not None:
                connection.close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._drop_connection()


class WarehouseUnavailable(Exception):
    """The inbox could not be written: answer 503 so the provider delivers again later."""


class BodyTooLarge(Exception):
    pass


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class Gateway:
    """The webhook routes' state: endpoints, limits and the inbox writer."""

    # Checked against when the workspace is unknown, so that answer takes as long as a real check.
    _STAND_IN = Endpoint("", "", tuple(secrets.token_bytes(32) for _ in range(KEYS_PER_ENDPOINT)), "")

    def __init__(self, endpoints: dict[tuple[str, str], Endpoint], writer: InboxWriter,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.endpoints = endpoints
        self.writer = writer
        self.max_body_bytes = max_body_bytes

    async def receive(self, request: Request) -> Response:
        provider, workspace_id = request.path_params["provider"], request.path_params["workspace"]
        if provider not in PROVIDERS:
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            body = await _body(request, self.max_body_bytes)
        except BodyTooLarge:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        endpoint = self.endpoints.get((provider, workspace_id))
        known = endpoint is not None
        endpoint = endpoint or self._STAND_IN
        headers = request.headers
        now = datetime.now(timezone.utc)
        if provider == "shopify":
            valid = shopify_signature_valid(body, headers.get("x-shopify-hmac-sha256"), endpoint.secrets)
            # The shop is checked against the workspace named in the URL, never taken from the request.
            valid = valid and (headers.get("x-shopify-shop-domain") or "").lower() == endpoint.shop_domain
        else:
            valid = stripe_signature_valid(body, headers.get("stripe-signature"), endpoint.secrets, now.timestamp())
        if not (known and valid):
            return _denied()
        parsed = _json_object(body)  # parsed once, after the signature: only signed bodies cost a parse
        if provider == "shopify":
            delivery_id, topic = headers.get("x-shopify-webhook-id"), headers.get("x-shopify-topic")
        else:
            delivery_id, topic = (_text((parsed or {}).get(name)) for name in ("id", "type"))
        if not delivery_id or not topic or not parsed:
            return JSONResponse({"error": "not a webhook: a JSON object with its id and topic"}, status_code=400)
        delivery = inbox.Delivery(workspace_id, provider, delivery_id, topic, now,
                                  body.decode("utf-8", errors="replace"))
        try:
            await self.writer.put(delivery)
        except WarehouseUnavailable:
            return Response(_UNAVAILABLE, status_code=503, media_type="application/json")
        return Response(_RECEIVED, media_type="application/json")


_RECEIVED = b'{"received":true}'
_UNAVAILABLE = b'{"error":"unavailable, retry later"}'


def _json_object(body: bytes) -> dict | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: object) -> str | None:
    """A Stripe event's id or type as text (None when missing or empty)."""
    return str(value) if value else None
