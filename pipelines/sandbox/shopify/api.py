"""The fake Shopify Admin GraphQL API: auth, graphql-core execution over the store, cost throttling.

Routes (one server serves every shop; docs/sandbox-shopify.md has the details):
- `POST /shops/<shop>/admin/api/<version>/graphql.json`, header `X-Shopify-Access-Token`;
- `POST /shops/<shop>/admin/oauth/access_token`, the client-credentials grant;
- `GET /bulk-results/<file>.jsonl`, bulk operation results (no token, like a presigned URL).
"""

from __future__ import annotations

import functools
import json
import random
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_abstract_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from pipelines.sandbox.shopify import data
from pipelines.sandbox.core.accounts import SHOPIFY_API_VERSIONS
from pipelines.sandbox.core.http import ApiHandler, Response
from pipelines.sandbox.shopify.bulk import REFERENCE_TYPES, BulkOperations
from pipelines.sandbox.shopify.cost import (
    MAX_QUERY_COST,
    ActualCost,
    CostCalculator,
    ThrottleBuckets,
    cost_extension,
    is_connection,
    max_cost_body,
    selected_fields,
    throttled_body,
)

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
DEFAULT_TOKEN_TTL = 86399  # issued tokens live 24 hours
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
NOT_FOUND = {"errors": "Not Found"}
_ROUTE = re.compile(r"/shops/(?P<shop>[^/]+)/admin/(?:api/(?P<version>[^/]+)/graphql\.json|(?P<oauth>oauth/access_token))")
_SCOPE_OF_KIND = {"order": "read_orders", "product": "read_products", "customer": "read_customers"}


@dataclass
class RequestContext:
    """What resolvers of one request see: the shop, its token's scopes, the store and clock."""

    conn: sqlite3.Connection
    workspace: str
    account: dict[str, Any]
    scopes: list[str]
    now: int
    bulk: BulkOperations
    lookup: data.Lookup
    reads: list[dict[str, Any]] = field(default_factory=list)  # per root connection, for the request log
    search_warnings: list[dict[str, Any]] = field(default_factory=list)
    bulk_started: list[dict[str, Any]] = field(default_factory=list)  # id and inner query, for the log

    def require(self, kind: str, field_name: str) -> None:
        scope = _SCOPE_OF_KIND[kind]
        if scope not in self.scopes:
            raise GraphQLError(
                f"Access denied for {field_name} field. Required access: `{scope}` access scope.",
                extensions={"code": "ACCESS_DENIED"},
            )

    def search(self, text: str | None, kind: str) -> data.Search:
        search = data.parse_search(text, kind, tz=self.account.get("timezone", "UTC"), now=self.now)
        if search.warnings:
            self.search_warnings.append({"query": text, "warnings": search.warnings})
        return search


# -- connections ---------------------------------------------------------------------------------


def _connection(nodes: list[Any], cursors: list[str], has_next: bool, has_previous: bool) -> dict[str, Any]:
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes)],
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def slice_list(tag: str, items: list, keys: list, *, first=None, last=None, after=None, before=None, reverse=False):
    """A connection over an in-memory list whose items have increasing, unique `keys`."""
    pairs = list(zip(keys, items))
    if reverse:
        pairs.reverse()
    beyond = (lambda key, cursor: key < cursor) if reverse else (lambda key, cursor: key > cursor)
    had_before = had_after = False
    if after is not None:
        mark = decode_key(after, tag)
        kept = [p for p in pairs if beyond(p[0], mark)]
        had_before, pairs = len(kept) < len(pairs), kept
    if before is not None:
        mark = decode_key(before, tag)
        kept = [p for p in pairs if beyond(mark, p[0])]
        had_after, pairs = len(kept) < len(pairs), kept
    if first is not None:
        has_next, has_previous, pairs = had_after or len(pairs) > first, had_before, pairs[:first]
    else:
        has_previous, has_next = had_before or len(pairs) > last, had_after
        pairs = pairs[len(pairs) - last :] if last else []
    cursors = [data.encode_cursor(tag, key) for key, _ in pairs]
    return _connection([item for _, item in pairs], cursors, has_next, has_previous)


def decode_key(cursor: str, tag: str) -> Any:
    (key,) = data.decode_cursor(cursor, tag)
    return key


def _root_connection(kind: str):
    def resolve(_root, info, first=None, last=None, after=None, before=None, query=None, reverse=False, sortKey="ID"):
        ctx: RequestContext = info.context
        ctx.require(kind, info.field_name)
        page = data.page(
            ctx.conn, ctx.workspace, kind, ctx.search(query, kind), data.scope_filter(kind, ctx.scopes, ctx.now),
            sort_key=sortKey, reverse=reverse, first=first, last=last, after=after, before=before,
        )
        if kind == "order":
            ctx.lookup.track(page.nodes)
        ctx.reads.append({"field": info.field_name, "query": query, "sortKey": sortKey, "nodes": len(page.nodes)})
        return _connection(page.nodes, page.cursors, page.has_next, page.has_previous)

    return resolve


def _root_node(kind: str):
    def resolve(_root, info, id):
        ctx: RequestContext = info.context
        ctx.require(kind, info.field_name)
        node = data.get_node(ctx.conn, ctx.workspace, kind, id, data.scope_filter(kind, ctx.scopes, ctx.now))
        if node is not None and kind == "order":
            ctx.lookup.track([node])
        ctx.reads.append({"field": info.field_name, "query": None, "sortKey": None, "nodes": int(node is not None)})
        return node

    return resolve


def _root_count(kind: str):
    def resolve(_root, info, query=None, limit=None):
        ctx: RequestContext = info.context
        ctx.require(kind, info.field_name)
        hidden = data.scope_filter(kind, ctx.scopes, ctx.now)
        return data.count(ctx.conn, ctx.workspace, kind, ctx.search(query, kind), hidden, limit)

    return resolve


def _nested_connection(root, info, first=None, last=None, after=None, before=None, reverse=False, **_):
    """A connection inside a node (lineItems, variants...): a slice of the stored list."""
    items = root.get(info.field_name) or []
    return slice_list("i", items, list(range(len(items))), first=first, last=last, after=after, before=before,
                      reverse=reverse)


def _list_field(root, info, first=None, **_):
    """A plain list (refunds, taxLines): never null when the schema says so, cut to `first`."""
    value = root.get(info.field_name)
    if value is None:
        return [] if is_non_null_type(info.return_type) else None
    return value if first is None else value[:first]


def _reference(root, info, **_):
    """`{"id": gid}` references are resolved from the store when more than they hold is selected."""
    value = root.get(info.field_name)
    if value is None:
        return None
    named = get_named_type(info.return_type)
    wanted = selected_fields(info.schema, info.fragments, info.variable_values, named, info.field_nodes)
    return value if wanted <= value.keys() else info.context.lookup.resolve(named.name, value)


def _legacy_resource_id(root, info):
    return root.get("legacyResourceId") or data.legacy_resource_id(root)


# -- bulk operations -----------------------------------------------------------------------------


def _bulk_run(_root, info, query, groupObjects=False):
    ctx: RequestContext = info.context
    shop = ctx.account["shop"]
    created, errors = ctx.bulk.start(info.schema, shop, ctx.workspace, ctx.scopes, query, groupObjects, ctx.now)
    if created:
        ctx.bulk_started.append({"id": created["id"], "query": query})
    return {"bulkOperation": created, "userErrors": errors}


def _bulk_cancel(_root, info, id):
    ctx: RequestContext = info.context
    operation, errors = ctx.bulk.cancel(ctx.account["shop"], id)
    return {"bulkOperation": operation, "userErrors": errors}


def _bulk_get(_root, info, id):
    op = info.context.bulk.get(info.context.account["shop"], id)
    return op.node() if op else None


def _bulk_current(_root, info, type="QUERY"):
    ops = info.context.bulk.of_shop(info.context.account["shop"])
    return ops[-1].node() if ops and type == "QUERY" else None


def _bulk_list(_root, info, first=None, last=None, after=None, before=None, query=None, reverse=False,
               sortKey="CREATED_AT"):
    ops = info.context.bulk.of_shop(info.context.account["shop"])
    wanted = re.findall(r"status:(\w+)", query or "")
    ops = [op for op in ops if not wanted or op.status.lower() in {w.lower() for w in wanted}]
    if sortKey == "COMPLETED_AT":
        ops.sort(key=lambda op: (op.completed_at or "", op.number))
        keys = [[op.completed_at or "", op.number] for op in ops]
    else:
        keys = [op.number for op in ops]
    return slice_list(sortKey, [op.node() for op in ops], keys, first=first, last=last, after=after,
                      before=before, reverse=reverse)


@functools.cache
def schema() -> GraphQLSchema:
    """Our schema with the sandbox's resolvers attached."""
    built = build_schema(SCHEMA_PATH.read_text())
    root = built.query_type
    for name, kind in data.KINDS.items():
        root.fields[name].resolve = _root_connection(kind)
        root.fields[kind].resolve = _root_node(kind)
        root.fields[f"{name}Count"].resolve = _root_count(kind)
    root.fields["shop"].resolve = lambda _root, info: data.shop_node(info.context.account, info.context.now)
    root.fields["bulkOperation"].resolve = _bulk_get
    root.fields["currentBulkOperation"].resolve = _bulk_current
    root.fields["bulkOperations"].resolve = _bulk_list
    built.mutation_type.fields["bulkOperationRunQuery"].resolve = _bulk_run
    built.mutation_type.fields["bulkOperationCancel"].resolve = _bulk_cancel
    for type_ in built.type_map.values():
        if is_abstract_type(type_):
            type_.resolve_type = lambda value, _info, _type: value["__typename"]
        if not is_object_type(type_) or type_ in (root, built.mutation_type) or is_connection(type_) or (
            type_.name.endswith("Edge")
        ):
            continue
        for name, field_def in type_.fields.items():
            named = get_named_type(field_def.type)
            if is_connection(named):
                field_def.resolve = _nested_connection
            elif named.name in REFERENCE_TYPES:
                field_def.resolve = _reference
            elif is_list_type(get_nullable_type(field_def.type)):
                field_def.resolve = _list_field
            elif name == "legacyResourceId":
                field_def.resolve = _legacy_resource_id
    return built


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class FileResponse(Response):
    """A response streamed from a file (bulk results can be gigabytes)."""

    path: Path | None = None


@dataclass(frozen=True)
class IssuedToken:
    shop: str
    scopes: tuple[str, ...]
    expires_at: float  # wall-clock seconds: tokens expire in real time, whatever the sandbox clock


class ShopifyHandler(ApiHandler):
    """Serves every shop in the store under `/shops/<shop>/admin/...`."""

    server_name = "shopify"

    # -- shared per-server state -----------------------------------------------------------------

    @property
    def buckets(self) -> ThrottleBuckets:
        return self.server.context.setdefault("shopify_buckets", ThrottleBuckets())

    @property
    def tokens(self) -> dict[str, IssuedToken]:
        return self.server.context.setdefault("shopify_tokens", {})

    @property
    def bulk(self) -> BulkOperations:
        ops = self.server.context.get("shopify_bulk")
        if ops is None:
            ops = self.server.context.setdefault(
                "shopify_bulk", BulkOperations(self.server.store.path, self.server.base_url)
            )
        return ops

    def _shop(self, shop: str) -> tuple[str, dict[str, Any]] | None:
        for workspace, account in self.server.store.accounts("shopify").items():
            if account["shop"] == shop:
                return workspace, account
        return None

    # -- routing ---------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        if path.startswith("/bulk-results/") and method == "GET":
            found = self.bulk.file(path.rsplit("/", 1)[-1])
            return FileResponse(200, b"", path=found, content_type="application/jsonl") if found else (
                Response.json(404, NOT_FOUND))
        match = _ROUTE.fullmatch(path)
        if not match:
            return Response.json(404, NOT_FOUND)
        shop = match["shop"]
        self.log_entry["shop"] = shop
        found = self._shop(shop)
        if found is None:
            return Response.json(404, NOT_FOUND)
        workspace, account = found
        if method != "POST":
            return Response.json(405, {"errors": f"{method} is not allowed here; use POST"})
        if match["oauth"]:
            return self._grant(account, body)
        if match["version"] not in SHOPIFY_API_VERSIONS:
            return Response.json(404, {"errors": f"Not Found: API version {match['version']!r} is not supported "
                                                 f"(supported: {', '.join(SHOPIFY_API_VERSIONS)})"})
        scopes = self._authenticate(shop, account)
        if scopes is None:
            return Response.json(401, INVALID_TOKEN)
        return self._graphql(workspace, account, scopes, body)

    def _grant(self, account: dict[str, Any], body: bytes) -> Response:
        """The client-credentials grant, with a form-encoded or JSON body."""
        try:
            if "json" in (self.headers.get("Content-Type") or ""):
                params = json.loads(body or b"{}")
            else:
                params = dict(parse_qsl(body.decode()))
        except ValueError:
            return Response.json(400, {"error": "invalid_request", "error_description": "The request body is malformed."})
        if params.get("grant_type") != "client_credentials":
            return Response.json(400, {"error": "unsupported_grant_type",
                                       "error_description": "Only grant_type=client_credentials is supported."})
        if (params.get("client_id"), params.get("client_secret")) != (account["client_id"], account["client_secret"]):
            return Response.json(401, {"error": "invalid_client",
                                       "error_description": "Client authentication failed: unknown client or wrong secret."})
        ttl = int(account.get("token_ttl_seconds", DEFAULT_TOKEN_TTL))
        token = "shpat_" + secrets.token_hex(16)
        self.tokens[token] = IssuedToken(account["shop"], tuple(account["scopes"]), time.time() + ttl)
        return Response.json(200, {"access_token": token, "scope": ",".join(account["scopes"]), "expires_in": ttl})

    def _authenticate(self, shop: str, account: dict[str, Any]) -> list[str] | None:
        """The token's scopes, or None when it is missing, wrong or expired."""
        token = self.headers.get("X-Shopify-Access-Token")
        if token and secrets.compare_digest(token, account["access_token"]):
            return list(account["scopes"])
        issued = self.tokens.get(token or "")
        if issued and issued.shop == shop and issued.expires_at > time.time():
            return list(issued.scopes)
        return None

    # -- GraphQL ---------------------------------------------------------------------------------

    def _graphql(self, workspace: str, account: dict[str, Any], scopes: list[str], body: bytes) -> Response:
        try:
            if "graphql" in (self.headers.get("Content-Type") or ""):
                payload = {"query": body.decode()}
            else:
                payload = json.loads(body or b"{}")
            text, variables = payload["query"], payload.get("variables") or {}
        except (ValueError, KeyError, TypeError):
            return Response.json(400, {"errors": "Bad Request: send a JSON body with a 'query'"})
        try:
            document = parse(text)
        except GraphQLError as exc:
            return Response.json(200, {"errors": [exc.formatted]})
        built = schema()
        errors = validate(built, document)
        operation = get_operation_ast(document, payload.get("operationName"))
        if not errors and operation is None:
            errors = [GraphQLError("An operation name is required when the document has several operations")]
        if errors:
            return Response.json(200, {"errors": [e.formatted for e in errors]})
        self.log_entry["operation"] = operation.name.value if operation.name else None
        fragments = {d.name.value: d for d in document.definitions if not isinstance(d, OperationDefinitionNode)}
        coerced = get_variable_values(built, operation.variable_definitions, variables)
        if isinstance(coerced, list):
            return Response.json(200, {"errors": [e.formatted for e in coerced]})
        try:
            requested = CostCalculator(built, fragments, coerced).operation(operation)
        except GraphQLError as exc:
            return Response.json(200, {"errors": [exc.formatted]})
        self.log_entry["requested_cost"] = requested
        self.server.context.setdefault("shopify_last_cost", {})[account["shop"]] = requested
        if requested > MAX_QUERY_COST:
            return Response.json(200, max_cost_body(requested))
        limits = account["throttle"]
        charged, available = self.buckets.take(account["shop"], limits, requested)
        if not charged:
            self.log_entry["throttled"] = True
            return Response.json(200, throttled_body(requested, available, limits))
        store = self.server.store
        context = RequestContext(store.conn, workspace, account, scopes, store.clock, self.bulk,
                                 data.Lookup(store.conn, workspace))
        meter = ActualCost()
        result = execute(built, document, variable_values=variables, operation_name=payload.get("operationName"),
                         context_value=context, middleware=[meter])
        actual = min(meter.total, requested)
        available = self.buckets.refund(account["shop"], limits, requested - actual)
        response: dict[str, Any] = {}
        if result.errors:
            response["errors"] = [e.formatted for e in result.errors]
        response["data"] = result.data
        response["extensions"] = cost_extension(requested, actual, available, limits)
        if context.search_warnings:
            response["extensions"]["search"] = context.search_warnings
        self.log_entry.update(
            actual_cost=actual,
            reads=context.reads,
            query_filters=[r["query"] for r in context.reads if r["query"] is not None],
            sort_keys=[r["sortKey"] for r in context.reads if r["sortKey"] is not None],
            nodes=sum(r["nodes"] for r in context.reads),
        )
        if context.bulk_started:
            self.log_entry["bulk_operations"] = context.bulk_started
        return Response.json(200, response)

    # -- faults and streaming ---------------------------------------------------------------------

    def fault_response(self, kind: str) -> Response:
        if kind == "429":
            return Response.json(
                429,
                {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."},
                {"Retry-After": "1"},
            )
        if kind == "5xx":
            rng = self.server.context.setdefault("shopify_fault_rng", random.Random(self.server.faults.seed))
            status = rng.choice((500, 502, 503))
            if status == 502:
                return Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
            message = "Internal Server Error" if status == 500 else "Service Unavailable"
            return Response.json(status, {"errors": message})
        # "throttled": the bucket is made to look just short of the shop's last query cost.
        match = _ROUTE.fullmatch(self.path.split("?")[0])
        found = self._shop(match["shop"]) if match else None
        limits = found[1]["throttle"] if found else {"maximum_available": 2000.0, "restore_rate": 100.0}
        shop = found[1]["shop"] if found else ""
        requested = self.server.context.get("shopify_last_cost", {}).get(shop, 10)
        available = min(self.buckets.level(shop, limits), max(requested - 1, 0))
        return Response.json(200, throttled_body(requested, available, limits))

    def _write(self, response: Response, truncate: bool = False) -> None:
        if not isinstance(response, FileResponse):
            return super()._write(response, truncate)
        size = response.path.stat().st_size
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(size))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        with response.path.open("rb") as source:
            # The kernel copies the file to the socket (no read into and write out of Python buffers).
            self.connection.sendfile(source, 0, size // 2 if truncate else size)
        if truncate:
            self.close_connection = True
