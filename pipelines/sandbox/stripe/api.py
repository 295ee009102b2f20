"""The fake Stripe REST API: read-only `/v1` endpoints over the sandbox store.

It behaves like api.stripe.com where a connector can tell the difference: API-key auth, Stripe's
error envelope, newest-first lists with `starting_after`/`ending_before` cursors, `created` range
filters, `expand[]`, embedded lists cut to their first 10 items, events kept for 30 days and
rendered in their own API version, `Stripe-Version` pinning, and a per-account rate limit.
docs/stripe-api.md describes what is and is not implemented.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from pipelines.sandbox.stripe import versions as stripe_versions
from pipelines.sandbox.core.http import ApiHandler, Response
from pipelines.sandbox.core.store import StoredObject

EVENT_RETENTION_SECONDS = 30 * 86400
DEFAULT_RATE_LIMIT = 100.0  # live-mode requests per second
EMBEDDED_PAGE = 10  # Stripe embeds the first 10 items of `subscription.items` and `invoice.lines`
MAX_EXPAND_DEPTH = 4
DOCS = "https://stripe.com/docs"

SUBSCRIPTION_STATUSES = ("active", "all", "canceled", "ended", "incomplete", "incomplete_expired", "past_due",
                         "paused", "trialing", "unpaid")
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")

# Which stored kind an id in an expandable field points at, by field name.
EXPANDABLE = {
    "customer": "customer",
    "default_price": "price",
    "product": "product",
    "price": "price",
    "subscription": "subscription",
    "latest_invoice": "invoice",
    "invoice": "invoice",
    "discounts": "discount",
    "coupon": "coupon",
}


class StripeError(Exception):
    """An error answer in Stripe's envelope: `{"error": {"type", "message", "code"?, "param"?, "doc_url"?}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"type": type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"{DOCS}/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.headers = headers or {}


def _missing(noun: str, id: str, param: str) -> StripeError:
    return StripeError(404, f"No such {noun}: '{id}'", code="resource_missing", param=param)


def _rate_limited() -> StripeError:
    # Stripe sends rate-limit 429s as invalid_request_error with code rate_limit (stripe-python
    # maps any 429 to RateLimitError); Stripe-Should-Retry tells clients a retry is safe.
    return StripeError(
        429,
        f"Request rate limit exceeded. You can learn more about rate limits here {DOCS}/rate-limits.",
        code="rate_limit",
        headers={"Stripe-Should-Retry": "true"},
    )


# -- query parameters ------------------------------------------------------------------------

_PARAM = re.compile(r"^([A-Za-z0-9_]+)(?:\[([A-Za-z0-9_]*)\])?$")


def parse_params(query: list[tuple[str, str]]) -> dict[str, Any]:
    """Decode Stripe's deepObject query style: `a=1`, `a[b]=1` (a dict), `a[]=1` / `a[0]=1` (a list)."""
    params: dict[str, Any] = {}
    for key, value in query:
        match = _PARAM.match(key)
        if not match:
            raise StripeError(400, f"Received unknown parameter: {key}", param=key)
        name, sub = match.groups()
        if sub is None:
            params[name] = value
        elif sub == "" or sub.isdigit():
            if not isinstance(params.setdefault(name, []), list):
                raise StripeError(400, f"Invalid array: {name}", param=name)
            params[name].append(value)
        else:
            if not isinstance(params.setdefault(name, {}), dict):
                raise StripeError(400, f"Invalid hash: {name}", param=name)
            params[name][sub] = value
    return params


def _integer(value: Any, param: str) -> int:
    try:
        if not isinstance(value, str):
            raise ValueError
        return int(value)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", param=param) from None


def _boolean(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {value}", param=param)
    return value == "true"


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise StripeError(400, f"Invalid string: {param}", param=param)
    return value


def _strings(value: Any, param: str) -> list[str]:
    if not isinstance(value, list):
        raise StripeError(400, f"Invalid array: {param}", param=param)
    return value


def _created_range(value: Any) -> dict[str, int]:
    """`created=<int>` (exactly that second) or `created[gt|gte|lt|lte]=<int>`."""
    if isinstance(value, str):
        second = _integer(value, "created")
        return {"gte": second, "lte": second}
    if not isinstance(value, dict):
        raise StripeError(400, "Invalid created: must be an integer or a hash", param="created")
    for op in value:
        if op not in ("gt", "gte", "lt", "lte"):
            raise StripeError(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
    return {op: _integer(v, f"created[{op}]") for op, v in value.items()}


# -- resources -------------------------------------------------------------------------------

Filter = Callable[[dict[str, Any]], bool]


def _subscription_status(value: Any) -> Filter:
    status = _string(value, "status")
    if status not in SUBSCRIPTION_STATUSES:
        raise StripeError(400, f"Invalid status: must be one of {', '.join(SUBSCRIPTION_STATUSES)}", param="status")
    if status == "all":
        return lambda body: True
    if status == "ended":
        return lambda body: body.get("status") in ("canceled", "incomplete_expired")
    return lambda body: body.get("status") == status


def _invoice_status(value: Any) -> Filter:
    status = _string(value, "status")
    if status not in INVOICE_STATUSES:
        raise StripeError(400, f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", param="status")
    return lambda body: body.get("status") == status


def _equals(field_name: str, parse: Callable[[Any, str], Any] = _string) -> Callable[[Any], Filter]:
    """A filter on one top-level field, e.g. `customer=cus_123` or `active=true`."""

    def build(value: Any) -> Filter:
        wanted = parse(value, field_name)
        return lambda body: body.get(field_name) == wanted

    return build


def _invoice_subscription(value: Any) -> Filter:
    wanted = _string(value, "subscription")
    return lambda body: (((body.get("parent") or {}).get("subscription_details") or {}).get("subscription")
                         == wanted)


def _subscription_price(value: Any) -> Filter:
    wanted = _string(value, "price")
    return lambda body: any((item.get("price") or {}).get("id") == wanted
                            for item in (body.get("items") or {}).get("data") or [])


def _id_in(value: Any) -> Filter:
    wanted = set(_strings(value, "ids"))
    return lambda body: body.get("id") in wanted


def _lookup_key_in(value: Any) -> Filter:
    wanted = set(_strings(value, "lookup_keys"))
    return lambda body: body.get("lookup_key") in wanted


def _event_type(value: Any) -> Filter:
    pattern = _string(value, "type")
    return lambda body: fnmatchcase(body.get("type", ""), pattern)


def _event_types(value: Any) -> Filter:
    wanted = _strings(value, "types")
    if len(wanted) > 20:
        raise StripeError(400, "Invalid types: must contain at most 20 elements", param="types")
    return lambda body: any(fnmatchcase(body.get("type", ""), pattern) for pattern in wanted)


@dataclass(frozen=True)
class Resource:
    """One listable Stripe resource: its store kind, its name in errors, and its list filters."""

    kind: str
    noun: str
    filters: dict[str, Callable[[Any], Filter]] = field(default_factory=dict)
    defaults: dict[str, Filter] = field(default_factory=dict)  # applied when that param is absent


RESOURCES: dict[str, Resource] = {
    "customers": Resource("customer", "customer", {"email": _equals("email")}),
    "products": Resource("product", "product", {
        "active": _equals("active", _boolean), "ids": _id_in, "shippable": _equals("shippable", _boolean),
        "type": _equals("type"), "url": _equals("url"),
    }),
    "prices": Resource("price", "price", {
        "active": _equals("active", _boolean), "currency": _equals("currency"), "product": _equals("product"),
        "type": _equals("type"), "lookup_keys": _lookup_key_in,
    }),
    "coupons": Resource("coupon", "coupon"),
    "subscriptions": Resource(
        "subscription", "subscription",
        {"status": _subscription_status, "customer": _equals("customer"), "price": _subscription_price,
         "collection_method": _equals("collection_method")},
        # "If no value is supplied, all subscriptions that have not been canceled are returned."
        defaults={"status": lambda body: body.get("status") != "canceled"},
    ),
    "invoices": Resource("invoice", "invoice", {
        "status": _invoice_status, "customer": _equals("customer"), "subscription": _invoice_subscription,
        "collection_method": _equals("collection_method"),
    }),
    "events": Resource("event", "event", {"type": _event_type, "types": _event_types}),
}
PAGING_PARAMS = {"limit", "starting_after", "ending_before", "expand"}


# -- rate limiting ---------------------------------------------------------------------------


class TokenBucket:
    """Allows `rate` requests per second on average, in bursts of up to `rate`."""

    def __init__(self, rate: float):
        self.rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


# -- the handler -----------------------------------------------------------------------------


class StripeHandler(ApiHandler):
    """Answers `/v1/...` GET requests for the Stripe account that owns the API key."""

    server_name = "stripe"

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        request_id = f"req_{uuid.uuid4().hex[:14]}"
        self.version = stripe_versions.LATEST
        try:
            payload = self._serve(method, path, query)
            response = Response.json(200, payload)
        except StripeError as exc:
            response = Response.json(exc.status, {"error": exc.body}, dict(exc.headers))
        except Exception as exc:  # a sandbox bug still answers in Stripe's shape, and is logged
            self.log_entry["exception"] = repr(exc)
            response = Response.json(500, {"error": {"type": "api_error", "message": f"sandbox error: {exc!r}"}})
        response.headers.update({"Request-Id": request_id, "Stripe-Version": self.version})
        return response

    def fault_response(self, kind: str) -> Response:
        """An injected 429 (a rate limit) or 5xx (500/502/503 in turn), both marked retryable."""
        if kind == "429":
            error = _rate_limited()
            status, body = error.status, {"error": error.body}
        else:
            counter = self.server.context.setdefault("stripe_5xx", itertools.count())
            status = (500, 502, 503)[next(counter) % 3]
            body = {"error": {"type": "api_error", "message": (
                "Sorry, something went wrong. We've already been notified of the problem, but if you need any "
                "help, you can reach us at support.stripe.com/contact."
            )}}
        return Response.json(status, body, {
            "Stripe-Should-Retry": "true", "Request-Id": f"req_{uuid.uuid4().hex[:14]}",
        })

    # -- request pipeline ------------------------------------------------------------------

    def _serve(self, method: str, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        self.workspace, self.account = self._authenticate()
        self.log_entry.update(workspace=self.workspace, account=self.account["account_id"])
        self._check_rate_limit()
        self.version = self._requested_version()
        self.log_entry["stripe_version"] = self.version
        parts = path.strip("/").split("/")
        if method != "GET" or len(parts) < 2 or parts[0] != "v1":
            raise self._unrecognized(method, path)
        params = parse_params(query)
        self._lookups: dict[tuple[str, str], dict[str, Any] | None] = {}
        resource, rest = parts[1], parts[2:]
        self.log_entry["resource"] = resource
        if resource == "invoices" and len(rest) == 2 and rest[1] == "lines":
            result = self._invoice_lines(rest[0], params)
        elif resource == "subscription_items" and len(rest) <= 1:
            result = self._subscription_items(rest[0] if rest else None, params)
        elif resource in RESOURCES and not rest:
            result = self._list(RESOURCES[resource], params)
        elif resource in RESOURCES and len(rest) == 1:
            result = self._retrieve(RESOURCES[resource], rest[0], params)
        else:
            raise self._unrecognized(method, path)
        self._expand(result, params.get("expand", []))
        return result

    def _unrecognized(self, method: str, path: str) -> StripeError:
        return StripeError(404, f"Unrecognized request URL ({method}: {path}). The sandbox serves read-only "
                                f"/v1 endpoints; see {DOCS} or docs/stripe-api.md.")

    def _authenticate(self) -> tuple[str, dict[str, Any]]:
        header = self.headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":  # curl -u sk_test_...: the key is the user name
            try:
                key = base64.b64decode(credentials.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        challenge = {"WWW-Authenticate": 'Basic realm="Stripe"'}
        if not key:
            raise StripeError(401, (
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                "https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/."
            ), headers=challenge)
        for workspace, account in self.server.store.accounts("stripe").items():
            if account.get("api_key") == key:
                return workspace, account
        prefix = re.match(r"^(?:sk|rk|pk)_(?:test|live)_", key)
        masked = (prefix.group(0) if prefix else "") + "****" + key[-4:]
        raise StripeError(401, f"Invalid API Key provided: {masked}", headers=challenge)

    def _check_rate_limit(self) -> None:
        rate = float(self.account.get("rate_limit_per_second") or DEFAULT_RATE_LIMIT)
        buckets: dict[str, TokenBucket] = self.server.context.setdefault("stripe_rate_limits", {})
        bucket = buckets.get(self.workspace)
        if bucket is None or bucket.rate != rate:
            bucket = buckets[self.workspace] = TokenBucket(rate)
        if not bucket.take():
            raise _rate_limited()

    def _requested_version(self) -> str:
        version = self.headers.get("Stripe-Version") or self.account.get("api_version") or stripe_versions.LATEST
        if version not in stripe_versions.SUPPORTED:
            raise StripeError(400, (
                f"Invalid Stripe API version: {version}. The sandbox serves "
                + " and ".join(stripe_versions.SUPPORTED) + "."
            ), param="Stripe-Version")
        return version

    # -- endpoints -------------------------------------------------------------------------

    def _list(self, resource: Resource, params: dict[str, Any]) -> dict[str, Any]:
        allowed = PAGING_PARAMS | {"created"} | set(resource.filters)
        self._reject_unknown(params, allowed)
        if resource.kind == "event" and "type" in params and "types" in params:
            raise StripeError(400, "You may only specify one of these parameters: type, types.", param="types")
        filters = [build(params[name]) for name, build in resource.filters.items() if name in params]
        filters += [keep for name, keep in resource.defaults.items() if name not in params]
        created = _created_range(params["created"]) if "created" in params else {}
        if resource.kind == "event":
            # Events older than 30 days are gone; a narrower window the client asked for still applies.
            floor = self.server.store.clock - EVENT_RETENTION_SECONDS
            created["gte"] = max(created.get("gte", floor), floor)
        limit = self._limit(params)
        rows, has_more = self._page(resource, created, filters, limit, params)
        self.log_entry.update(
            filters={
                "created": created or None,
                **{name: params.get(name) for name in ("starting_after", "ending_before", *resource.filters)
                   if name in params},
            },
            limit=limit,
            returned=len(rows),
            has_more=has_more,
        )
        return {"object": "list", "data": [self._present(row) for row in rows], "has_more": has_more,
                "url": f"/v1/{self.log_entry['resource']}"}

    def _page(
        self, resource: Resource, created: dict[str, int], filters: list[Filter], limit: int, params: dict[str, Any]
    ) -> tuple[list[StoredObject], bool]:
        """One page in newest-first `(created, id)` order, exact under concurrent writes.

        The cursor is the `(created, id)` of the named object, so updates never move an object
        between pages, and objects created meanwhile sort before the cursor and are not returned.
        """
        backwards = "ending_before" in params
        cursor_param = "ending_before" if backwards else "starting_after"
        after = None
        if cursor_param in params:
            cursor_id = _string(params[cursor_param], cursor_param)
            after = self.server.store.position(self.workspace, "stripe", resource.kind, cursor_id)
            if after is None:
                raise _missing(resource.noun, cursor_id, cursor_param)
        found: list[StoredObject] = []
        batch = max(limit + 1, 100)
        while len(found) <= limit:
            rows = self.server.store.query(
                self.workspace, "stripe", resource.kind, descending=not backwards, after=after, created=created,
                limit=batch,
            )
            found.extend(row for row in rows if all(keep(row.body) for keep in filters))
            if len(rows) < batch:
                break
            after = (rows[-1].created, rows[-1].id)
        has_more = len(found) > limit
        page = found[:limit]
        return (page[::-1] if backwards else page), has_more

    def _retrieve(self, resource: Resource, id: str, params: dict[str, Any]) -> dict[str, Any]:
        self._reject_unknown(params, {"expand"})
        row = self.server.store.get(self.workspace, "stripe", resource.kind, id)
        expired = (resource.kind == "event" and row is not None
                   and row.created < self.server.store.clock - EVENT_RETENTION_SECONDS)
        if row is None or expired:
            raise _missing(resource.noun, id, "id")
        self.log_entry.update(filters={"id": id}, returned=1)
        return self._present(row)

    def _invoice_lines(self, invoice_id: str, params: dict[str, Any]) -> dict[str, Any]:
        self._reject_unknown(params, PAGING_PARAMS)
        row = self.server.store.get(self.workspace, "stripe", "invoice", invoice_id)
        if row is None:
            raise _missing("invoice", invoice_id, "invoice")
        lines = (row.body.get("lines") or {}).get("data") or []
        return self._embedded_page(lines, params, "invoice line item", f"/v1/invoices/{invoice_id}/lines")

    def _subscription_items(self, item_id: str | None, params: dict[str, Any]) -> dict[str, Any]:
        if item_id is not None:
            self._reject_unknown(params, {"expand"})
            # Items are stored inside their subscription; a retrieve has to look through them all.
            for row in self.server.store.iter_objects(self.workspace, "stripe", "subscription"):
                for item in (row.body.get("items") or {}).get("data") or []:
                    if item.get("id") == item_id:
                        self.log_entry.update(filters={"id": item_id}, returned=1)
                        return stripe_versions.render(item, self.version, self._lookup)
            raise _missing("subscription item", item_id, "id")
        self._reject_unknown(params, PAGING_PARAMS | {"subscription"})
        if "subscription" not in params:
            raise StripeError(400, "Missing required param: subscription.", param="subscription")
        subscription_id = _string(params["subscription"], "subscription")
        row = self.server.store.get(self.workspace, "stripe", "subscription", subscription_id)
        if row is None:
            raise _missing("subscription", subscription_id, "subscription")
        items = (row.body.get("items") or {}).get("data") or []
        return self._embedded_page(items, params, "subscription item",
                                   f"/v1/subscription_items?subscription={subscription_id}")

    def _embedded_page(self, items: list[dict[str, Any]], params: dict[str, Any], noun: str, url: str) -> dict[str, Any]:
        """Page a stored embedded list (invoice lines, subscription items) in its stored order."""
        limit = self._limit(params)
        positions = {item.get("id"): index for index, item in enumerate(items)}
        if "ending_before" in params:
            cursor = _string(params["ending_before"], "ending_before")
            if cursor not in positions:
                raise _missing(noun, cursor, "ending_before")
            end = positions[cursor]
            start = max(0, end - limit)
            page, has_more = items[start:end], start > 0
        else:
            start = 0
            if "starting_after" in params:
                cursor = _string(params["starting_after"], "starting_after")
                if cursor not in positions:
                    raise _missing(noun, cursor, "starting_after")
                start = positions[cursor] + 1
            page, has_more = items[start:start + limit], start + limit < len(items)
        self.log_entry.update(
            filters={name: params[name] for name in ("starting_after", "ending_before") if name in params},
            limit=limit, returned=len(page), has_more=has_more,
        )
        return {"object": "list", "data": [stripe_versions.render(item, self.version, self._lookup) for item in page],
                "has_more": has_more, "url": url}

    # -- shaping responses -----------------------------------------------------------------

    def _limit(self, params: dict[str, Any]) -> int:
        if "limit" not in params:
            return 10
        limit = _integer(params["limit"], "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", param="limit")
        return limit

    def _reject_unknown(self, params: dict[str, Any], allowed: set[str]) -> None:
        for name in params:
            if name not in allowed:
                raise StripeError(400, f"Received unknown parameter: {name}", param=name)

    def _lookup(self, kind: str, id: str) -> dict[str, Any] | None:
        """A stored body by kind and id, cached for the request (rendering asks for the same prices)."""
        key = (kind, id)
        if key not in self._lookups:
            row = self.server.store.get(self.workspace, "stripe", kind, id)
            self._lookups[key] = None if row is None else row.body
        return self._lookups[key]

    def _present(self, row: StoredObject) -> dict[str, Any]:
        """A stored object as this request's API version returns it."""
        if row.deleted:
            return {"id": row.id, "object": row.kind, "deleted": True}
        body = _truncate_embedded(row.body)
        if row.kind == "event":
            data = body.get("data") or {}
            if isinstance(data.get("object"), dict):
                body = {**body, "data": {**data, "object": _truncate_embedded(data["object"])}}
            body = stripe_versions.render_event_data(body, self._lookup)
        return stripe_versions.render(body, self.version, self._lookup)

    def _expand(self, result: dict[str, Any], paths: Any) -> None:
        """Replace ids with objects along each `expand[]` path (`data.` first on lists), in place."""
        for index, path in enumerate(_strings(paths, "expand")):
            parts = path.split(".")
            if len([p for p in parts if p != "data"]) > MAX_EXPAND_DEPTH:
                raise StripeError(400, f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property.",
                                  param=f"expand[{index}]")
            self._expand_path(result, parts, path, index)

    def _expand_path(self, node: Any, parts: list[str], path: str, index: int) -> None:
        name, rest = parts[0], parts[1:]
        if not isinstance(node, dict) or name not in node:
            raise StripeError(400, f"This property cannot be expanded ({path}).", param=f"expand[{index}]")
        node[name] = self._expand_value(name, node[name], rest, path, index)

    def _expand_value(self, name: str, value: Any, rest: list[str], path: str, index: int) -> Any:
        if isinstance(value, list):
            return [self._expand_value(name, item, rest, path, index) for item in value]
        if isinstance(value, str) or (not rest and value is not None):
            if name not in EXPANDABLE:
                raise StripeError(400, f"This property cannot be expanded ({path}).", param=f"expand[{index}]")
            if isinstance(value, str):
                row = self.server.store.get(self.workspace, "stripe", EXPANDABLE[name], value)
                value = value if row is None else self._present(row)
        if rest and isinstance(value, dict):
            self._expand_path(value, rest, path, index)
        return value


def _truncate_embedded(body: dict[str, Any]) -> dict[str, Any]:
    """Cut a subscription's items or an invoice's lines to Stripe's first page of 10."""
    kind = body.get("object")
    if kind == "subscription":
        name, url = "items", f"/v1/subscription_items?subscription={body.get('id')}"
    elif kind == "invoice":
        name, url = "lines", f"/v1/invoices/{body.get('id')}/lines"
    else:
        return body
    embedded = body.get(name)
    if not isinstance(embedded, dict):
        return body
    data = embedded.get("data") or []
    return {**body, name: {"object": "list", "data": data[:EMBEDDED_PAGE], "has_more": len(data) > EMBEDDED_PAGE,
                           "total_count": len(data), "url": url}}
