"""What both fake APIs share: a threaded HTTP server, fault injection, a request log, admin routes.

Each API subclasses `ApiHandler` and implements `route()` plus the API's own error shapes. The
admin routes under `/_sandbox/` are the same on both servers (they share one store and clock).
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, urlsplit

from pipelines import json_io

if TYPE_CHECKING:
    from pipelines.sandbox.core.store import SandboxStore
    from pipelines.sandbox.core.webhooks import WebhookSender

FAULT_KINDS = ("429", "5xx", "throttled", "slow", "truncate")


class FaultSpecError(ValueError):
    """A --faults value that does not parse."""


@dataclass
class Faults:
    """Per-server shares of faulty responses.

    Syntax (also documented in docs/sandbox.md): a comma-separated list of `[server:]kind=share`,
    where server is `shopify` or `stripe` (omitted: both), kind is one of 429, 5xx, throttled
    (Shopify only), slow, truncate, and share is a fraction between 0 and 1. `slow` takes an
    optional delay in seconds after a colon (default 1.0). Example:
    `429=0.05,5xx=0.05,shopify:throttled=0.1,slow=0.02:0.5,truncate=0.03`.
    """

    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    slow_seconds: float = 1.0
    seed: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> "Faults":
        faults = cls(seed=seed, _rng=random.Random(seed))
        for item in (spec or "").split(","):
            item = item.strip()
            if not item:
                continue
            left, eq, share = item.partition("=")
            target, _, kind = left.rpartition(":")
            if target not in ("", "shopify", "stripe"):
                raise FaultSpecError(f"--faults: unknown server {target!r} in {item!r} (use shopify or stripe)")
            if not eq or kind not in FAULT_KINDS:
                raise FaultSpecError(
                    f"--faults: cannot read {item!r}; expected [server:]kind=share with kind one of "
                    + ", ".join(FAULT_KINDS)
                )
            share, _, delay = share.partition(":")
            if delay and kind != "slow":
                raise FaultSpecError(f"--faults: only slow takes a delay, in {item!r}")
            try:
                value = float(share)
                if delay:
                    faults.slow_seconds = float(delay)
            except ValueError as exc:
                raise FaultSpecError(f"--faults: {item!r} needs a number between 0 and 1") from exc
            if not 0 <= value <= 1:
                raise FaultSpecError(f"--faults: share in {item!r} must be between 0 and 1")
            if kind == "throttled" and target == "stripe":
                raise FaultSpecError("--faults: throttled is a Shopify fault; Stripe uses 429")
            for server in ([target] if target else ["shopify", "stripe"]):
                if kind == "throttled" and server == "stripe":
                    continue
                faults.rates.setdefault(server, {})[kind] = value
        return faults

    def draw(self, server: str) -> str | None:
        """Pick at most one fault for the next request to `server`."""
        rates = self.rates.get(server)
        if not rates:
            return None
        with self._lock:
            roll = self._rng.random()
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += rates.get(kind, 0.0)
            if roll < cumulative:
                return kind
        return None


class RequestLog:
    """Every request the sandbox answered, for tests and for `GET /_sandbox/requests`."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["seq"] = len(self._entries)
            self._entries.append(entry)

    def entries(self, since: int = 0, server: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            found = self._entries[since:]
        return [e for e in found if server is None or e["server"] == server]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, json_io.dumps(payload), headers or {})


class SandboxHTTPServer(ThreadingHTTPServer):
    """A server bound to one API; handlers reach shared state through `self.server`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type["ApiHandler"],
        *,
        store: "SandboxStore",
        faults: Faults,
        log: RequestLog,
        advance: Callable[[dict[str, Any]], dict[str, Any]],
        truth: Callable[[], dict[str, Any]],
        context: dict[str, Any] | None = None,
        webhooks: "WebhookSender | None" = None,
    ):
        super().__init__(address, handler)
        self.store = store
        self.faults = faults
        self.log = log
        self.advance = advance
        self.truth = truth
        self.webhooks = webhooks
        self.context = context or {}  # per-API state, e.g. Shopify's throttle buckets

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class ApiHandler(BaseHTTPRequestHandler):
    """Base request handler: parses the request, applies faults, logs, and writes responses."""

    server: SandboxHTTPServer
    server_name = "api"  # "shopify" or "stripe"
    protocol_version = "HTTP/1.1"
    # A response goes out as two writes, its headers and then its body. With Nagle's algorithm on, a
    # small body waited for the client's delayed ACK of the headers: ≈ 40 ms a request on Linux
    # loopback for a client that sends its next request at once (docs/performance.md).
    disable_nagle_algorithm = True

    # -- to implement per API ------------------------------------------------------------------

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        raise NotImplementedError

    def fault_response(self, kind: str) -> Response:
        """The API's own body for an injected 429, 5xx or throttle."""
        raise NotImplementedError

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header: the simulation's clock, as the real APIs send their own time.

        Connectors read it as the API's "now" (a record dated after it is not sane), so a sandbox
        whose clock was advanced past this machine's is still judged by its own time.
        """
        return super().date_time_string(self.server.store.clock if timestamp is None else timestamp)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.log_entry: dict[str, Any] = {
            "server": self.server_name,
            "method": method,
            "path": parts.path,
            "query": parts.query,
            "time": time.time(),
        }
        fault = None
        if parts.path.startswith("/_sandbox/"):
            response = self._admin(method, parts.path, query, body)
        else:
            fault = self.server.faults.draw(self.server_name)
            if fault in ("429", "5xx", "throttled"):
                response = self.fault_response(fault)
            else:
                if fault == "slow":
                    time.sleep(self.server.faults.slow_seconds)
                try:
                    response = self.route(method, parts.path, query, body)
                except Exception as exc:  # a sandbox bug must look like a 500, not a dropped socket
                    response = Response.json(500, {"error": {"message": f"sandbox error: {exc!r}"}})
                    self.log_entry["exception"] = repr(exc)
        self.log_entry.update(status=response.status, fault=fault, ms=round((time.monotonic() - started) * 1000, 1))
        if not parts.path.startswith("/_sandbox/"):
            self.server.log.add(self.log_entry)
        self._write(response, truncate=fault == "truncate")

    def _write(self, response: Response, truncate: bool = False) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncate:
            # Promise the whole body, send half, hang up: what a dropped connection looks like.
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(response.body)

    def _admin(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        store = self.server.store
        if path == "/_sandbox/clock" and method == "GET":
            return Response.json(200, {"clock": store.clock})
        if path == "/_sandbox/truth" and method == "GET":
            return Response.json(200, self.server.truth())
        if path == "/_sandbox/advance" and method == "POST":
            try:
                payload = json.loads(body or b"{}")
                return Response.json(200, self.server.advance(payload))
            except (ValueError, TypeError) as exc:
                return Response.json(400, {"error": str(exc)})
        if path == "/_sandbox/requests" and method == "GET":
            params = dict(query)
            return Response.json(
                200, self.server.log.entries(int(params.get("since", 0)), params.get("server"))
            )
        if path == "/_sandbox/requests" and method == "DELETE":
            self.server.log.clear()
            return Response.json(200, {"cleared": True})
        if path == "/_sandbox/faults" and method == "PUT":
            try:
                spec = json.loads(body or b"{}").get("spec", "")
                new = Faults.parse(spec, seed=self.server.faults.seed)
            except (ValueError, FaultSpecError) as exc:
                return Response.json(400, {"error": str(exc)})
            self.server.faults.rates = new.rates
            self.server.faults.slow_seconds = new.slow_seconds
            return Response.json(200, {"faults": new.rates})
        if path.startswith("/_sandbox/webhooks") and self.server.webhooks is not None:
            return self._webhooks_admin(method, path, body)
        return Response.json(404, {"error": f"no admin route {method} {path}"})

    def _webhooks_admin(self, method: str, path: str, body: bytes) -> Response:
        """Subscribe and configure webhooks, read their delivery log, send a compliance topic."""
        webhooks = self.server.webhooks
        try:
            payload = json.loads(body or b"{}")
            if path == "/_sandbox/webhooks" and method == "PUT":
                subscribed = webhooks.subscribe(payload["url"], payload.get("workspaces")) if payload.get("url") else {}
                webhooks.misbehave(payload.get("misbehave"))
                return Response.json(200, {"subscribed": subscribed, "misbehave": webhooks.misbehaviour})
            if path == "/_sandbox/webhooks" and method == "GET":
                return Response.json(200, {"deliveries": list(webhooks.log)})
            if path == "/_sandbox/webhooks/delete" and method == "POST":
                sent = webhooks.delete(payload["workspace"], payload["object"])
                return Response.json(200, {"delivery_id": sent.delivery_id if sent else None})
            if path == "/_sandbox/webhooks/compliance" and method == "POST":
                sent = webhooks.send_compliance(payload["workspace"], payload["topic"], payload.get("customer"))
                return Response.json(200, {"delivery_id": sent.delivery_id, "topic": sent.topic})
        except (ValueError, KeyError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": f"no admin route {method} {path}"})
