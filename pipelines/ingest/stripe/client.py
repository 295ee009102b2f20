"""Stripe's REST API over dlt's retrying HTTP client: auth, version pinning, pacing and list paging.

Retries (429, 5xx, dropped connections, truncated bodies) are dlt's `Client` with a predicate
that honours `Stripe-Should-Retry`; this module only paces requests, counts them, and turns
error answers into messages a user can act on. The API key is sent in a header and never appears
in a message, log line or exception.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
from dlt.sources.helpers.requests import Client
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from pipelines import json_io
from pipelines.ingest.pipeline import SyncStats
from pipelines.ingest.quarantine import storable
from pipelines.workspaces import WorkspaceError

logger = logging.getLogger(__name__)

PAGE_LIMIT = 100  # Stripe's maximum page size
# Stripe allows 100 read requests/s in live mode and 25 in test mode; stay at 80% of that.
REQUESTS_PER_SECOND = {"live": 80.0, "test": 20.0}
MAX_ATTEMPTS = 10
KEY_SETTING = "connectors.stripe.api_key_env"


class Page(list):
    """The objects of one list page. `wide_ints` is False when the page's text holds no run of 19
    digits, so no whole number in it is beyond 64 bits: the contract skips that walk over its objects."""

    wide_ints = True


def ints_fit(page: list[dict[str, Any]]) -> bool:
    """Whether every whole number of `page` is known to fit in 64 bits: a Page marked so (any other
    list, a replayed object's or one of unknown origin, may hold a wider one)."""
    return not getattr(page, "wide_ints", True)


class StripeApiError(RuntimeError):
    """An error answer from Stripe that retrying cannot fix."""

    def __init__(self, message: str, status: int, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class StripeAuthError(WorkspaceError):
    """Stripe rejected the key (401) or a restricted key lacks a permission (403)."""


def _should_retry(response: requests.Response | None, exception: BaseException | None) -> bool:
    """Retry what Stripe marks as retryable, rate limits and server errors, and cut-off bodies.

    `Stripe-Should-Retry` wins when present: Stripe sets it to say a retry is (un)safe.
    """
    if response is None:
        return False  # dlt's exception list already covers dropped connections
    advice = response.headers.get("Stripe-Should-Retry")
    if advice is not None:
        return advice == "true"
    if response.status_code == 429 or response.status_code >= 500:
        return True
    # A body cut short without a Content-Length to betray it still cannot be a whole JSON object.
    return response.status_code == 200 and not response.content.rstrip().endswith(b"}")


class _BearerAuth(AuthBase):
    """The key as `Authorization: Bearer`, set as the session's auth (so no netrc file can replace it)."""

    def __init__(self, api_key: str):
        self._value = f"Bearer {api_key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request


class _CountingAdapter(HTTPAdapter):
    """Counts every attempt on the wire (dlt's retry wrapper sits above the adapter)."""

    def __init__(self, client: "StripeClient"):
        super().__init__(pool_maxsize=4)
        self._client = client

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            return super().send(request, **kwargs)
        finally:
            self._client._note_attempt(time.monotonic() - started)


class StripeClient:
    """One Stripe account seen through one API key, pinned to one API version.

    Args:
        base_url: `https://api.stripe.com` or a stand-in such as the sandbox.
        api_key: a secret or restricted (`rk_`) key; read-only permissions suffice.
        api_version: sent as `Stripe-Version` on every request.
        workspace_id: named in error messages.
        key_variable: the environment variable the key came from, named in error messages.
        stats: request, retry and wait (pacing and backoff) counters to fill.
        requests_per_second: pace; by default 80% of Stripe's limit for the key's mode.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        api_version: str,
        workspace_id: str,
        key_variable: str,
        stats: SyncStats,
        requests_per_second: float | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.workspace_id = workspace_id
        self.key_variable = key_variable
        self.stats = stats
        mode = "live" if re.match(r"^(sk|rk)_live_", api_key) else "test"
        self._interval = 1.0 / (requests_per_second or REQUESTS_PER_SECOND[mode])
        self._auth = _BearerAuth(api_key)
        self._headers = {"Stripe-Version": api_version}
        self._http = Client(
            raise_for_status=False,
            status_codes=(),  # the predicate decides, so Stripe-Should-Retry: false is respected
            retry_condition=_should_retry,
            request_max_attempts=MAX_ATTEMPTS,
            request_backoff_factor=0.5,
            request_max_retry_delay=30,
            request_timeout=60,
        )
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._waited_until = 0.0  # the end of the last pacing wait, for counting waits once
        # Attempts and wire time per thread: lists are read by several threads at once (feed.py),
        # and each request's retries happen in the thread that sent it.
        self._local = threading.local()

    # -- transport ---------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = self._http.session
        if not getattr(session, "_abos_counting", False):
            adapter = _CountingAdapter(self)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.auth = self._auth
            # What `requests` reads from the environment for every request when `trust_env` is on (the
            # proxy variables, scanning all of os.environ twice; the CA bundle; a netrc file), read once:
            # every request goes to this one host. A quarter of a small request's CPU otherwise.
            settings = session.merge_environment_settings(self.base_url, {}, None, None, None)
            session.proxies, session.verify = settings["proxies"], settings["verify"]
            session.trust_env = False
            session._abos_counting = True  # type: ignore[attr-defined]
        return session

    def _note_attempt(self, seconds: float) -> None:
        self._local.attempts = getattr(self._local, "attempts", 0) + 1
        self._local.wire_seconds = getattr(self._local, "wire_seconds", 0.0) + seconds

    def _pace(self) -> None:
        """Space request starts evenly so a long sync never trips the account's rate limit.

        The wait is counted as wall time: readers waiting at once (feed.py reads several windows of a
        list in threads) count their common wait once, so the sum never exceeds the sync's duration.
        """
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
            self.stats.throttle_wait_seconds += max(0.0, slot - max(now, self._waited_until))
            self._waited_until = max(self._waited_until, slot)
        if slot > now:
            time.sleep(slot - now)

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET `path` (e.g. `/v1/customers`) and return the decoded JSON, retrying what can be retried."""
        self._pace()
        attempts_before = getattr(self._local, "attempts", 0)
        wire_before = getattr(self._local, "wire_seconds", 0.0)
        started = time.monotonic()
        response = self._session().get(self.base_url + path, params=params, headers=self._headers)
        attempts = getattr(self._local, "attempts", 0) - attempts_before
        wire = getattr(self._local, "wire_seconds", 0.0) - wire_before
        with self._lock:
            self.stats.requests += attempts
            if attempts > 1:  # the time not spent on the wire went to backing off before retries
                self.stats.retries += attempts - 1
                self.stats.throttle_wait_seconds += max(0.0, time.monotonic() - started - wire)
        self.stats.saw_api_date(response.headers.get("Date"))
        if response.status_code >= 400:
            raise self._error(path, response)
        wide_ints = json_io.may_hold_wide_ints(response.content)
        body = json_io.loads(response.content, wide_ints=wide_ints)
        # NUL characters and lone surrogates carry no meaning, and no warehouse stores them (Postgres
        # neither NUL in text nor JSON, UTF-8 no lone surrogate). JSON escapes both, so a body without
        # those escapes holds none and needs no walk.
        if json_io.may_hold_nul_or_surrogates(response.content):
            body, removed, replaced = storable(body)
            with self._lock:
                self.stats.nul_removed += removed
                self.stats.surrogates_replaced += replaced
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            body["data"] = page = Page(body["data"])
            page.wide_ints = wide_ints
        return body

    def _error(self, path: str, response: requests.Response) -> Exception:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        where = f"workspace {self.workspace_id!r}"
        if response.status_code == 401:
            # Stripe's own message echoes part of the key, so it is left out on purpose.
            return StripeAuthError(
                f"{where}: Stripe rejected the API key read from {KEY_SETTING} (environment variable "
                f"{self.key_variable}) with 401 Unauthorized; set that variable to a valid secret or "
                "restricted key for this account"
            )
        if response.status_code == 403:
            return StripeAuthError(
                f"{where}: the API key in {KEY_SETTING} ({self.key_variable}) may not read {path} "
                f"(403: {error.get('message', 'permission denied')}); give the restricted key read access"
            )
        return StripeApiError(
            f"{where}: Stripe answered {response.status_code} to GET {path}: "
            f"{error.get('type', 'error')}: {error.get('message', response.reason)}",
            response.status_code,
            error.get("code"),
        )

    # -- lists -------------------------------------------------------------------------------

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list, newest first, following `starting_after` while `has_more`."""
        params = {**(params or {}), "limit": PAGE_LIMIT}
        while True:
            body = self.get(path, params)
            data = body.get("data") or []
            if data:
                yield data
            if not body.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def pages_after(self, path: str, cursor_id: str) -> Iterator[list[dict[str, Any]]]:
        """Every object newer than `cursor_id`, oldest first, walking `ending_before` towards now."""
        params: dict[str, Any] = {"limit": PAGE_LIMIT, "ending_before": cursor_id}
        while True:
            body = self.get(path, params)
            data = body.get("data") or []  # newest first within the page
            if data:
                oldest_first = Page(reversed(data))
                oldest_first.wide_ints = getattr(data, "wide_ints", True)
                yield oldest_first
            if not body.get("has_more") or not data:
                return
            params["ending_before"] = data[0]["id"]

    def rest_of_list(self, embedded: dict[str, Any] | None, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """An embedded list (`items`, `lines`) made complete: page its endpoint when it was cut."""
        data = list((embedded or {}).get("data") or [])
        if not (embedded or {}).get("has_more"):
            return data
        seen = {item["id"] for item in data}
        query = {**params, "limit": PAGE_LIMIT}
        if data:
            query["starting_after"] = data[-1]["id"]
        while True:
            body = self.get(path, query)
            page = body.get("data") or []
            data.extend(item for item in page if item["id"] not in seen)
            seen.update(item["id"] for item in page)
            if not body.get("has_more") or not page:
                return data
            query["starting_after"] = page[-1]["id"]
