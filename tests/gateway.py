"""Run `abos serve`'s app on a free loopback port (uvicorn in a thread), and sign deliveries the way
Shopify and Stripe document it (written here from their docs, not taken from the gateway)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` over HTTP until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def shopify_headers(body: bytes, secret: str, *, shop: str, topic: str, webhook_id: str) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-API-Version": "2026-10"}


def stripe_headers(body: bytes, *secrets: str, t: int | None = None) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    signatures = ",".join(
        "v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest() for secret in secrets)
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={t},{signatures}"}
