"""Run the fake Shopify and Stripe APIs over one store: used by `abos sandbox serve`, the demo and tests."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

from pipelines.sandbox.simulation import runner, simulator
from pipelines.sandbox.core.http import Faults, RequestLog, SandboxHTTPServer
from pipelines.sandbox.core.store import SandboxStore
from pipelines.sandbox.core.webhooks import WebhookSender, stripe_webhook_secret


def build_store(
    path: str | Path,
    *,
    size: str = "small",
    seed: int = 42,
    as_of: date | None = None,
    fixtures: str | Path | None = None,
    progress: simulator.Progress = lambda _: None,
) -> SandboxStore:
    """A store holding the simulation (or the fixture file). A finished store at `path` with the
    same parameters is reused, since the same seed, size and as-of always give the same data; one
    whose clock was advanced since (`abos sandbox advance`) is reused as it is, advanced. A store with
    other parameters, or left unfinished, is generated again, and `progress` says why."""
    path = Path(path)
    if fixtures is not None:
        from pipelines.sandbox.fixtures import load_fixtures

        path.unlink(missing_ok=True)
        store = SandboxStore(path)
        load_fixtures(store, fixtures)
        return store
    as_of = as_of or date.today()
    wanted = {"seed": seed, "size": size, "as_of": as_of.isoformat(), "format": simulator.STORE_FORMAT}
    if path.exists():
        store = SandboxStore(path)
        differs = _differs(store, wanted)
        if not differs:
            advanced = store.clock > store.get_meta("finished_clock")
            progress(f"reusing the {size} sandbox in {path}"
                     + (f", advanced to {simulator.iso(store.clock)}" if advanced else ""))
            return store
        store.close()
        progress(f"generating the {size} sandbox in {path} again: the file there {differs}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    tmp = path.with_name(path.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    store = SandboxStore(tmp)
    runner.generate(store, seed=seed, size=size, as_of=as_of, progress=progress)
    store.set_meta("finished_clock", store.clock)
    store.conn.execute("pragma wal_checkpoint(truncate)")
    store.close()
    tmp.rename(path)  # only a complete simulation ever sits at `path`
    return SandboxStore(path)


def _differs(store: SandboxStore, wanted: dict[str, Any]) -> str:
    """Why `store` cannot serve as the simulation `wanted` names ("" when it can): other parameters,
    or no finished simulation (a fixture file, or a clock behind the one its generation ended at)."""
    params = store.get_meta("params") or {}
    finished = store.get_meta("finished_clock")
    if not params or finished is None:
        return "holds no finished simulation"
    other = [f"{key} {params.get(key)!r} (asked {value!r})" for key, value in wanted.items() if params.get(key) != value]
    if other:
        return "has " + ", ".join(other)
    if store.clock < finished:
        return f"has its clock at {simulator.iso(store.clock)}, before its simulation's end {simulator.iso(finished)}"
    return ""


def parse_when(value: str) -> int:
    """`2026-12-01` (end of that UTC day) or a full ISO timestamp, as Unix seconds."""
    if len(value) == 10:
        day = date.fromisoformat(value)
        return int(datetime.combine(day, time(23, 59, 59), timezone.utc).timestamp())
    return simulator.parse_iso(value)


class Sandbox:
    """The fake APIs (Shopify, Stripe, and the ECB's rate files), serving one store on loopback
    ports, each in its own thread."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        host: str = "127.0.0.1",
        shopify_port: int = 0,
        stripe_port: int = 0,
        ecb_port: int = 0,
        faults: Faults | str | None = None,
        seed: int = 0,
        webhooks_url: str | None = None,
    ):
        from pipelines.sandbox.ecb import EcbHandler
        from pipelines.sandbox.shopify.api import ShopifyHandler
        from pipelines.sandbox.stripe.api import StripeHandler

        self.store = store
        self.faults = faults if isinstance(faults, Faults) else Faults.parse(faults, seed=seed)
        self.requests = RequestLog()
        self._advance_lock = threading.Lock()
        # Webhooks for what each advance changes, once subscribed (here or PUT /_sandbox/webhooks).
        self.webhooks = WebhookSender(store, seed=seed)
        if webhooks_url:
            self.webhooks.subscribe(webhooks_url)
        self.servers = {
            name: SandboxHTTPServer(
                (host, port), handler, store=store, faults=self.faults, log=self.requests, advance=self._advance,
                truth=lambda: runner.truth(store), webhooks=self.webhooks,
            )
            for name, handler, port in (
                ("shopify", ShopifyHandler, shopify_port),
                ("stripe", StripeHandler, stripe_port),
                ("ecb", EcbHandler, ecb_port),
            )
        }
        self._threads: list[threading.Thread] = []

    @property
    def shopify_url(self) -> str:
        return self.servers["shopify"].base_url

    @property
    def stripe_url(self) -> str:
        return self.servers["stripe"].base_url

    def start(self) -> "Sandbox":
        for name, server in self.servers.items():
            # A short poll interval makes stop() quick; idle polling costs next to nothing.
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sandbox-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        bulk = self.servers["shopify"].context.get("shopify_bulk")
        if bulk is not None:
            bulk.close()  # exports still running
        self.webhooks.close()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance(self, *, days: float | None = None, to: str | int | None = None) -> dict[str, Any]:
        """Move the simulated clock forward; see `runner.advance`."""
        when = parse_when(to) if isinstance(to, str) else to
        with self._advance_lock:
            since = self.store.clock
            result = runner.advance(self.store, days=days, to=when)
            result["webhooks"] = self.webhooks.changed(since, self.store.clock)
            return result

    def _advance(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not ("days" in payload) ^ ("to" in payload):
            raise ValueError('send {"days": N} or {"to": "YYYY-MM-DD"}')
        return self.advance(days=payload.get("days"), to=payload.get("to"))

    def connection_info(self) -> dict[str, Any]:
        """Base URLs and demo credentials: the JSON line `abos sandbox serve` prints when ready."""
        shops = {
            ws: {
                "base_url": f"{self.shopify_url}/shops/{acct['shop']}",
                "access_token": acct["access_token"],
                "client_id": acct["client_id"],
                "client_secret": acct["client_secret"],
            }
            for ws, acct in self.store.accounts("shopify").items()
        }
        accounts = {
            ws: {"base_url": self.stripe_url, "api_key": acct["api_key"], "account_id": acct["account_id"],
                 "webhook_secret": stripe_webhook_secret(ws)}
            for ws, acct in self.store.accounts("stripe").items()
        }
        return {
            "shopify": {"base_url": self.shopify_url, "workspaces": shops},
            "stripe": {"base_url": self.stripe_url, "workspaces": accounts},
            "ecb": {"base_url": self.servers["ecb"].base_url,
                    "hist_zip": f"{self.servers['ecb'].base_url}/stats/eurofxref/eurofxref-hist.zip"},
            "admin": {"advance": f"{self.shopify_url}/_sandbox/advance", "clock": simulator.iso(self.store.clock)},
        }
