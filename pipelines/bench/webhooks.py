"""`abos bench --webhooks`: the gateway's accept latency at a steady rate, and that nothing is lost.

`abos serve` runs in a process of its own on a fresh warehouse (DuckDB by default) with one Stripe
workspace. The load is open-loop: delivery i is due at start + i / rate, whatever the answers
before it, and its latency counts from when it was due to when its answer arrived, so a slow
gateway cannot hide its backlog (coordinated omission). Each delivery is a signed Stripe event
with its own id, sent over a pool of keep-alive connections. At the end the inbox must hold
exactly the accepted events: `lost` counts the difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable

import psutil
import yaml

from pipelines.bench.served import _stop_with_parent
from pipelines.settings import load_settings

WORKSPACE = "bench-saas"
SECRET = "bench-endpoint-secret"
CONNECTIONS = 256  # providers deliver over many connections at once; too few would cap the batches


def _event(number: int) -> bytes:
    return json.dumps({
        "id": f"evt_bench_{number:08d}", "object": "event", "type": "invoice.paid", "api_version": "2026-10-28.endive",
        "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
        "data": {"object": {"id": f"in_bench_{number:08d}", "object": "invoice", "customer": f"cus_bench{number % 997}",
                            "amount_paid": 4900, "currency": "usd", "status": "paid"}},
    }, separators=(",", ":")).encode()


def _request(host: str, port: int, body: bytes) -> bytes:
    t = int(time.time())
    signature = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    head = (f"POST /webhooks/stripe/{WORKSPACE} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: t={t},v1={signature}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response; its status."""
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _load(host: str, port: int, rate: float, seconds: float) -> tuple[list[float], dict[int, int]]:
    total = int(rate * seconds)
    queue: asyncio.Queue[int] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.monotonic() + 0.5

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                number = await queue.get()
                due = start + number / rate
                try:
                    writer.write(_request(host, port, _event(number)))
                    await writer.drain()
                    status = await _answer(reader)
                except (ConnectionError, asyncio.IncompleteReadError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append(time.monotonic() - due)
                statuses[status] = statuses.get(status, 0) + 1
                queue.task_done()
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    for number in range(total):
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(number)
    await queue.join()
    for worker in workers:
        worker.cancel()
    return latencies, statuses


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def run_webhook_bench(rate: float = 500, seconds: float = 60, *, warehouse_url: str | None = None,
                      progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Deliver `rate` signed webhooks per second for `seconds` to `abos serve`; returns the figures."""
    home = load_settings().home / "bench" / f"webhooks-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    home.mkdir(parents=True)
    (home / "workspaces.yaml").write_text(yaml.safe_dump({"workspaces": [{
        "id": WORKSPACE, "name": "Webhook bench", "vertical": "saas", "timezone": "UTC", "currency": "USD",
        "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "BENCH_STRIPE_KEY",
                                  "webhook_secret_env": "BENCH_STRIPE_WEBHOOK_SECRET"}}}]}))
    env = {**os.environ, "ABOS_HOME": str(home), "ABOS_WORKSPACES": str(home / "workspaces.yaml"),
           "BENCH_STRIPE_WEBHOOK_SECRET": SECRET}
    if warehouse_url:
        env["ABOS_WAREHOUSE_URL"] = warehouse_url
    else:
        env.pop("ABOS_WAREHOUSE_URL", None)
    settings = load_settings(env)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)], env=env,
                              preexec_fn=_stop_with_parent if sys.platform == "linux" else None)
    try:
        _wait_healthy(port)
        progress(f"gateway on port {port} ({settings.warehouse.kind}); {rate:g} webhooks/s for {seconds:g}s")
        gateway = psutil.Process(server.pid)
        cpu_before = gateway.cpu_times()
        started = time.monotonic()
        latencies, statuses = asyncio.run(_load("127.0.0.1", port, rate, seconds))
        elapsed = time.monotonic() - started
        cpu_after = gateway.cpu_times()
        cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = int(settings.warehouse.query("select count(*) as n from webhooks.inbox")["n"][0])
    accepted = statuses.get(200, 0)
    result = {
        "rate_asked": rate, "seconds": seconds, "sent": len(latencies),
        "rate_achieved": round(len(latencies) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "stored": stored,
        "lost": len(latencies) - stored, "accepted_not_stored": accepted - stored,
        "latency_ms": {name: round(_percentile(latencies, share) * 1000, 1)
                       for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
        "warehouse": settings.warehouse.kind, "connections": CONNECTIONS,
        # What one webhook costs the gateway, and the machine's load while measured (the load
        # generator runs on the same machine; other work on it shows in the latencies).
        "gateway_cpu_ms_per_webhook": round(cpu * 1000 / max(1, len(latencies)), 2),
        "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }
    (home / "result.json").write_text(json.dumps(result, indent=2))
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start") from None
            time.sleep(0.1)
