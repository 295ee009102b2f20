"""A polite Admin GraphQL client: auth, cost-based pacing, retries, bulk operations.

HTTP goes through dlt's `requests` helper client, which retries 429 (honouring Retry-After), 5xx
and dropped or truncated connections with exponential backoff. On top of it:
- every response's `extensions.cost.throttleStatus` updates an estimate of the shop's leaky bucket,
  and a request waits for the bucket to hold its expected cost before it is sent;
- a `THROTTLED` answer (HTTP 200 on Shopify) waits `(requested - available) / restoreRate` and is
  then retried by the same retry machinery;
- access tokens come from the workspace's environment variable, or from the client-credentials
  grant, renewed before they expire.
Secrets are never logged or put in an exception message.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlt.sources.helpers.requests import Client, Response
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

from pipelines.ingest.pipeline import SyncStats
from pipelines.workspaces import Connector, WorkspaceError

MAX_ATTEMPTS = 10  # at 20% faulty responses, ten failures in a row happen once in 10^7 requests
BACKOFF_FACTOR = 0.25  # seconds; doubles per attempt
MAX_RETRY_DELAY = 30.0
REQUEST_TIMEOUT = 120.0
TOKEN_RENEW_MARGIN = 0.1  # renew a granted token when less than 10% of its life is left
MAX_QUERY_COST = 1000.0  # Shopify's single-query limit: the most an operation not seen yet can cost
BULK_POLL_START, BULK_POLL_MAX = 0.1, 5.0  # seconds between bulk operation polls
BULK_DONE = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
BULK_BUSY_WAIT = 900.0  # seconds to wait for a free bulk slot (a shop runs five at a time)


class ShopifyAuthError(WorkspaceError):
    """The shop refused the workspace's credentials; the message names the setting to fix."""


class ShopifyApiError(RuntimeError):
    """A GraphQL error other than throttling (bad query, missing scope, failed bulk operation)."""


class _BulkSlotsBusy(ShopifyApiError):
    """Every bulk slot of the shop is taken, e.g. by operations of a killed run still finishing."""


@dataclass
class Bucket:
    """Our estimate of the shop's query-cost bucket, from the last `throttleStatus` seen."""

    available: float = 0.0
    maximum: float = 0.0
    restore_rate: float = 0.0
    at: float = 0.0  # time.monotonic() of the observation; 0 means nothing seen yet

    def observe(self, status: dict[str, Any]) -> None:
        self.available = float(status.get("currentlyAvailable") or 0)
        self.maximum = float(status.get("maximumAvailable") or 0)
        self.restore_rate = float(status.get("restoreRate") or 0)
        self.at = time.monotonic()

    def wait_for(self, cost: float) -> float:
        """Seconds until the bucket holds `cost` points (0 when it does, or when we know nothing)."""
        if not self.at or self.restore_rate <= 0:
            return 0.0
        level = min(self.maximum, self.available + (time.monotonic() - self.at) * self.restore_rate)
        return max(0.0, (min(cost, self.maximum) - level) / self.restore_rate)


def _throttled(payload: Any) -> bool:
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return isinstance(errors, list) and any(
        (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors if isinstance(e, dict)
    )


class ShopifyClient:
    """One shop's Admin GraphQL API, for one sync."""

    def __init__(
        self,
        connector: Connector,
        api_version: str,
        stats: SyncStats,
        *,
        work_dir: Path | None = None,
    ):
        self.connector = connector
        self.api_version = api_version
        self.stats = stats
        self.work_dir = work_dir
        self.graphql_url = f"{connector.base_url}/admin/api/{api_version}/graphql.json"
        self.bucket = Bucket()
        self._costs: dict[str, float] = {}  # requestedQueryCost last seen, per operation
        self._token: str | None = None
        self._token_renew_at = 0.0  # time.monotonic() after which a granted token is renewed
        self.http = Client(
            request_timeout=REQUEST_TIMEOUT,
            raise_for_status=False,  # 401/403/404 get messages that name the setting to fix
            request_max_attempts=MAX_ATTEMPTS,
            request_backoff_factor=BACKOFF_FACTOR,
            request_max_retry_delay=MAX_RETRY_DELAY,
            retry_condition=lambda response, _exc: response is not None and self._is_throttled(response),
            session_attrs={"hooks": {"response": [self._on_response]}},
        )

    # -- auth ------------------------------------------------------------------------------------

    def _setting(self, name: str) -> str:
        return f"connectors.shopify.{name}_env"

    def _where(self) -> str:
        return f"{self.connector.file}: workspace {self.connector.workspace_id!r}"

    def token(self) -> str:
        """The access token: the static one, or one granted for the client credentials."""
        if self.connector.has_secret("access_token"):
            if self._token is None:
                self._token = self.connector.secret("access_token")
            return self._token
        if self._token is None or time.monotonic() >= self._token_renew_at:
            self._grant()
        assert self._token is not None
        return self._token

    def _grant(self) -> None:
        """Exchange the client id and secret for a token (Shopify's client-credentials grant)."""
        client_id = self.connector.secret("client_id")
        client_secret = self.connector.secret("client_secret")
        response = self._counted(
            self.http.post,
            f"{self.connector.base_url}/admin/oauth/access_token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        if response.status_code in (400, 401, 403):
            raise ShopifyAuthError(
                f"{self._where()}: the shop rejected the client credentials in {self._setting('client_id')} "
                f"({self.connector.secret_envs['client_id']}) and {self._setting('client_secret')} "
                f"({self.connector.secret_envs['client_secret']}): HTTP {response.status_code} "
                f"{_error_code(response)}"
            )
        response.raise_for_status()
        grant = response.json()
        lifetime = float(grant.get("expires_in") or 86400)
        self._token = grant["access_token"]
        self._token_renew_at = time.monotonic() + lifetime * (1 - TOKEN_RENEW_MARGIN)

    def _rejected(self, response: Response) -> ShopifyAuthError:
        if self.connector.has_secret("access_token"):
            setting = f"{self._setting('access_token')} ({self.connector.secret_envs['access_token']})"
        else:
            setting = f"the token granted for {self._setting('client_id')} and {self._setting('client_secret')}"
        return ShopifyAuthError(
            f"{self._where()}: the shop at {self.connector.base_url} rejected {setting}: "
            f"HTTP {response.status_code}"
        )

    # -- transport -------------------------------------------------------------------------------

    def _on_response(self, response: Response, *args: Any, **kwargs: Any) -> Response:
        """Runs after every HTTP attempt: count it, read the cost, wait out THROTTLED."""
        self.stats.requests += 1
        self.stats.saw_api_date(response.headers.get("Date"))
        if not _is_json(response) or response.status_code != 200:
            return response  # bulk results stream to a file instead
        payload = response.json()  # a truncated body raises here, inside the retried send
        cost = (payload.get("extensions") or {}).get("cost") or {}
        if cost.get("throttleStatus"):
            self.bucket.observe(cost["throttleStatus"])
        if _throttled(payload):
            requested = float(cost.get("requestedQueryCost") or 0)
            wait = self.bucket.wait_for(requested)
            self.stats.throttle_wait_seconds += wait
            time.sleep(wait)
        return response

    @staticmethod
    def _is_throttled(response: Response) -> bool:
        return response.status_code == 200 and _is_json(response) and _throttled(response.json())

    def execute(self, query: str, variables: dict[str, Any] | None = None, *, operation: str,
                cost: float | None = None) -> dict[str, Any]:
        """Run one GraphQL operation and return its `data`; raises on errors. `cost`: the points the
        operation requests when that is known before Shopify's first answer says (a count: 1)."""
        # An operation not seen yet may otherwise cost up to the single-query limit: a count waited
        # for 1,000 points to come back before asking for 1 (4.2 s on the sandbox's bucket).
        expected = MAX_QUERY_COST if cost is None else cost
        wait = self.bucket.wait_for(self._costs.get(operation, expected))
        if wait:
            self.stats.throttle_wait_seconds += wait
            time.sleep(wait)
        response = self._post(query, variables, operation)
        if response.status_code == 401 and not self.connector.has_secret("access_token"):
            self._token = None  # a granted token may have been revoked early: ask for a new one once
            response = self._post(query, variables, operation)
        if response.status_code in (401, 403):
            raise self._rejected(response)
        if response.status_code == 404:
            raise ShopifyApiError(
                f"{self._where()}: {self.graphql_url} was not found (HTTP 404); check connectors.shopify.base_url "
                f"and the API version {self.api_version!r} (connectors.shopify.api_version or ABOS_SHOPIFY_API_VERSION)"
            )
        response.raise_for_status()
        payload = response.json()
        cost = (payload.get("extensions") or {}).get("cost") or {}
        if cost.get("requestedQueryCost"):
            self._costs[operation] = float(cost["requestedQueryCost"])
        if payload.get("errors"):
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in _as_list(payload["errors"])
            )
            raise ShopifyApiError(f"{self._where()}: Shopify {operation} failed: {messages}")
        return payload["data"]

    def _post(self, query: str, variables: dict[str, Any] | None, operation: str) -> Response:
        token = self.token()
        return self._counted(
            self.http.post,
            self.graphql_url,
            json={"query": query, "variables": variables or {}, "operationName": operation},
            headers={"X-Shopify-Access-Token": token},
        )

    def _counted(self, send: Callable[..., Response], *args: Any, **kwargs: Any) -> Response:
        """One logical request; every HTTP attempt past the first counts as a retry."""
        before = self.stats.requests
        response = send(*args, **kwargs)
        self.stats.retries += max(0, self.stats.requests - before - 1)
        return response

    # -- bulk operations -------------------------------------------------------------------------

    def start_bulk(self, query: str, bulk_run: str) -> dict[str, Any]:
        """Start a bulk query operation; returns the operation (`id`, `status`, `createdAt`).

        When the shop's bulk slots are all taken, waits for one to free up.
        """
        for attempt in Retrying(
            retry=retry_if_exception_type(_BulkSlotsBusy),
            stop=stop_after_delay(BULK_BUSY_WAIT),
            wait=wait_exponential(multiplier=1, max=MAX_RETRY_DELAY),
            reraise=True,
        ):
            with attempt:
                started = self.execute(bulk_run, {"query": query}, operation="BulkRun")["bulkOperationRunQuery"]
                errors = started["userErrors"]
                if errors:
                    messages = "; ".join(f"{e.get('code')}: {e['message']}" for e in errors)
                    busy = all(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors)
                    raise (_BulkSlotsBusy if busy else ShopifyApiError)(
                        f"{self._where()}: Shopify refused the bulk query: {messages}"
                    )
        return started["bulkOperation"]

    def wait_bulk(self, operation: dict[str, Any], bulk_poll: str) -> str | None:
        """Wait for a started bulk operation; returns its result URL (None when nothing matched)."""
        delay, started = BULK_POLL_START, time.monotonic()
        while operation["status"] not in BULK_DONE:
            time.sleep(delay)
            delay = min(delay * 1.5, BULK_POLL_MAX)
            operation = self.execute(bulk_poll, {"id": operation["id"]}, operation="BulkPoll")["bulkOperation"]
        self.stats.bulk_wait_seconds += time.monotonic() - started
        if operation["status"] != "COMPLETED":
            raise ShopifyApiError(
                f"{self._where()}: bulk operation {operation['id']} ended {operation['status']} "
                f"({operation.get('errorCode') or 'no error code'})"
            )
        return operation.get("url")

    @contextmanager
    def bulk_file(self, url: str | None) -> Iterator[Path | None]:
        """The JSONL result downloaded to a temporary file, removed afterwards (None: no result)."""
        if not url:  # Shopify gives no file when nothing matched
            yield None
            return
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="shopify-bulk-") as tmp:
            path = Path(tmp) / "result.jsonl"
            # The retrying client covers statuses and connection errors up to the headers; a body
            # cut short while streaming surfaces later, so the whole download is retried.
            for attempt in Retrying(
                retry=retry_if_exception_type(DEFAULT_RETRY_EXCEPTIONS),
                stop=stop_after_attempt(MAX_ATTEMPTS),
                wait=wait_exponential(multiplier=BACKOFF_FACTOR, max=MAX_RETRY_DELAY),
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats.retries += 1
                    self._download(url, path)
            yield path

    def _download(self, url: str, path: Path) -> None:
        with self._counted(self.http.get, url, stream=True) as response:
            response.raise_for_status()
            with path.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    out.write(chunk)


def _is_json(response: Response) -> bool:
    """A JSON answer (not a JSONL bulk result, which is streamed and never parsed whole)."""
    return response.headers.get("Content-Type", "").split(";")[0].strip() == "application/json"


def _as_list(errors: Any) -> list[Any]:
    return errors if isinstance(errors, list) else [errors]


def _error_code(response: Response) -> str:
    """The OAuth error code of a refused grant (never the body's other fields)."""
    try:
        return str(response.json().get("error") or "")
    except ValueError:
        return ""
