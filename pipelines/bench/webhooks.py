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
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil
import yaml

from pipelines.processes import die_with_parent
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
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head.split(None, 2)[1])


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
                    status = await _answer(reader)
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
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


def _run_load(host: str, port: int, rate: float, seconds: float) -> tuple[list[float], dict[int, int], float]:
    """`_load` on uvloop; also the load generator's own CPU seconds (what it can send is bounded by it)."""
    import uvloop

    cpu = time.process_time()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        latencies, statuses = runner.run(_load(host, port, rate, seconds))
    return latencies, statuses, time.process_time() - cpu


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
                              preexec_fn=_terminate_with_parent)
    try:
        _wait_healthy(port)
        progress(f"gateway on port {port} ({settings.warehouse.kind}); {rate:g} webhooks/s for {seconds:g}s")
        gateway = psutil.Process(server.pid)
        cpu_before = gateway.cpu_times()
        started = time.monotonic()
        latencies, statuses, load_cpu = _run_load("127.0.0.1", port, rate, seconds)
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
        "load_generator_cpu_ms_per_webhook": round(load_cpu * 1000 / max(1, len(latencies)), 2),
        "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }
    (home / "result.json").write_text(json.dumps(result, indent=2))
    return result


def _terminate_with_parent() -> None:
    die_with_parent(signal.SIGTERM)


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


# -- From webhook to checked metrics -----------------------------------------------------------------

FRESHNESS_WORKSPACE = "demo-us-store"
RUN_KINDS = ("refresh", "sync", "transform", "anomalies")  # the webhook runs, by their `abos/webhooks` tag


def run_freshness_bench(*, advance_days: float = 0.25, seed: int = 7, as_of: str = "2026-03-31",
                        timeout: float = 900, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """How long from an order's webhook until the order is in `marts.orders` and its workspace's
    anomalies are checked, through the production path: the sandbox (its own process) sends the
    webhooks of what its clock changed to `abos serve`, and `dagster-daemon` runs the webhook
    sensor and the `webhook_refresh` runs it requests, each in a process of its own (a refresh
    executes its sync, dbt and anomaly runs in that process).

    The warehouse is first built by `abos run` for one shop; then the clock advances `advance_days`.
    Per order created in that window: its webhook's `received_at` in the inbox, the end of the
    targeted sync that read it, of the dbt refresh after that sync, and of the anomaly check after
    that refresh. The order must then be in `marts.orders`.
    """
    from datetime import date

    import dagster as dg

    from pipelines.bench.served import served, working_copy
    from pipelines.run import dagster_instance, run_all
    from pipelines.sandbox.core.connection import sandbox_env
    from pipelines.settings import PROJECT_ROOT
    from pipelines.webhook_jobs import INBOX_TAG, STEP_TAG
    from pipelines.workspaces import load_workspaces

    home = load_settings().home / "bench" / f"webhook-freshness-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    home.mkdir(parents=True)
    demo = yaml.safe_load((PROJECT_ROOT / "workspaces.yaml").read_text())
    (home / "workspaces.yaml").write_text(yaml.safe_dump(
        {"workspaces": [w for w in demo["workspaces"] if w["id"] == FRESHNESS_WORKSPACE]}))
    port = _free_port()
    cached = load_settings().home / "bench" / "cache" / f"tiny-seed{seed}-{as_of}.sqlite"
    cached.parent.mkdir(parents=True, exist_ok=True)
    store = working_copy(cached, home / "sandbox.sqlite", size="tiny", seed=seed,  # the bench advances it
                         as_of=date.fromisoformat(as_of))
    processes: list[subprocess.Popen] = []
    with served(store, size="tiny", seed=seed, as_of=date.fromisoformat(as_of),
                webhooks_url=f"http://127.0.0.1:{port}") as sandbox:
        # `abos run`'s Definitions, `abos serve` and the daemon all read this environment: the bench's
        # own home, the one shop, the sandbox's credentials, a DuckDB warehouse.
        os.environ.update({**sandbox_env(sandbox.info), "ABOS_HOME": str(home),
                           "ABOS_WORKSPACES": str(home / "workspaces.yaml"), "DAGSTER_HOME": str(home / "dagster")})
        os.environ.pop("ABOS_WAREHOUSE_URL", None)
        settings = load_settings()
        env = dict(os.environ)
        daemon_log = open(home / "daemon.log", "w")
        try:
            # The gateway starts first (it takes a while on a busy machine); the daemon once the
            # warehouse is built, so none of its sensors' runs mixes with the first build.
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port)], env=env,
                preexec_fn=_terminate_with_parent))
            progress("building the warehouse once (abos run) for the shop")
            started = time.monotonic()
            built = run_all(load_workspaces(settings.workspaces_file), progress=progress, settings=settings)
            build_seconds = time.monotonic() - started
            if built["failed"]:
                raise RuntimeError(f"the first build failed: {built['failed']}")
            _wait_healthy(port, timeout=600)
            processes.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                env=env, cwd=PROJECT_ROOT, stdout=daemon_log, stderr=subprocess.STDOUT,
                preexec_fn=_terminate_with_parent))
            _wait_for_sensor_ticks(settings, "webhook_syncs", timeout=600)  # the daemon is up
            progress(f"advancing the sandbox {advance_days} day(s); its webhooks go to the gateway")
            sandbox.advance(advance_days)
            with dagster_instance(settings) as instance:
                figures = _follow(instance, settings, timeout, progress, dg, INBOX_TAG, STEP_TAG)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
            daemon_log.close()
    in_marts = {row["order_id"] for row in settings.warehouse.rows(
        "select order_id from marts.orders where workspace_id = %s", (FRESHNESS_WORKSPACE,))}
    orders = figures.pop("orders")
    missing = [o["order"] for o in orders if o["order"] not in in_marts]
    latencies = [o["checked_after_s"] for o in orders if o.get("checked_after_s") is not None]
    result = {
        "orders_created": len(orders), "missing_from_marts": missing, "first_build_seconds": round(build_seconds, 1),
        "webhook_to_checked_s": {"max": max(latencies, default=None), "min": min(latencies, default=None)},
        "within_60s": bool(latencies) and len(latencies) == len(orders) and max(latencies) <= 60 and not missing,
        **figures, "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }
    (home / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _wait_for_sensor_ticks(settings, sensor: str, timeout: float) -> None:
    """Wait until the daemon has evaluated `sensor` at least once (it loads the code location first)."""
    import dagster as dg

    from pipelines.run import dagster_instance

    deadline = time.monotonic() + timeout
    with dagster_instance(settings) as instance:
        while time.monotonic() < deadline:
            states = [state for state in instance.all_instigator_state() if state.name == sensor]
            if states and instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, limit=1):
                return
            time.sleep(2)
    raise RuntimeError(f"the Dagster daemon did not evaluate {sensor} within {timeout:g} s")


def _follow(instance, settings, timeout: float, progress, dg, inbox_tag: str, step_tag: str) -> dict[str, Any]:
    """Wait until every order created in the window has been synced, refreshed and checked; the times."""
    from pipelines import inbox

    deadline = time.monotonic() + timeout
    orders: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            rows = inbox.read_after(settings.warehouse, 0, limit=100_000, lock_timeout=1.0)
        except TimeoutError:
            continue
        created = [r for r in rows if r["topic"] == "orders/create"]
        if not created:
            continue
        runs = {kind: [r for r in instance.get_run_records(dg.RunsFilter(tags={step_tag: kind}))]
                for kind in RUN_KINDS}
        orders = [_order_times(row, runs, inbox_tag) for row in created]
        failed = [r.dagster_run.run_id for kind in runs.values() for r in kind
                  if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]
        if failed:
            raise RuntimeError(f"webhook runs failed: {failed}")
        if all(o.get("checked_after_s") is not None for o in orders):
            break
    else:
        progress("timed out waiting for the webhook runs")
    runs = {kind: [r for r in instance.get_run_records(dg.RunsFilter(tags={step_tag: kind}))]
            for kind in RUN_KINDS}
    seconds = {kind: sorted(round(r.end_time - r.start_time, 1) for r in records if r.end_time and r.start_time)
               for kind, records in runs.items()}
    return {"orders": orders, "runs": {kind: len(records) for kind, records in runs.items()},
            "run_seconds": seconds}


def _order_times(row: dict[str, Any], runs: dict[str, list], inbox_tag: str) -> dict[str, Any]:
    """When the order's webhook arrived, and how long after it each step that covered it ended."""
    received = row["received_at"].timestamp()
    found: dict[str, Any] = {"order": row["payload"].get("admin_graphql_api_id"), "inbox_id": row["inbox_id"]}

    def covers(record) -> bool:
        first, _, last = record.dagster_run.tags.get(inbox_tag, "0-0").partition("-")
        return int(first) <= row["inbox_id"] <= int(last)

    synced = [r for r in runs["sync"] if covers(r) and r.end_time]
    if not synced:
        return found
    sync_end = min(r.end_time for r in synced)
    found["synced_after_s"] = round(sync_end - received, 1)
    refreshed = [r for r in runs["transform"] if r.start_time and r.start_time >= sync_end and r.end_time]
    if not refreshed:
        return found
    refresh_end = min(r.end_time for r in refreshed)
    found["in_marts_after_s"] = round(refresh_end - received, 1)
    checked = [r for r in runs["anomalies"] if r.start_time and r.start_time >= refresh_end and r.end_time]
    if checked:
        found["checked_after_s"] = round(min(r.end_time for r in checked) - received, 1)
    return found
