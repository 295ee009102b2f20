"""Shopify bulk query operations: validate the inner query, export JSONL in a background thread.

The export reads one consistent snapshot of the store (a SQLite read transaction opened before the
mutation returns) and never runs graphql-core per node: the inner query's selection set is compiled
once into plain functions that copy the selected fields out of each stored dict. Nodes of nested
connections become their own lines with `__parentId`, as on Shopify.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    parse,
    validate,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields

from pipelines.sandbox import shopify_data as data
from pipelines.sandbox.shopify_cost import is_connection, selected_fields
from pipelines.sandbox.simulator import iso

MAX_RUNNING = 5  # per shop, from API 2026-01
MAX_CONNECTIONS = 5
MAX_DEPTH = 2
REFERENCE_TYPES = {"Order", "Customer", "Product", "ProductVariant", "LineItem"}
ACTIVE = ("CREATED", "RUNNING", "CANCELING")

Project = Callable[[dict[str, Any], list, data.Lookup], dict[str, Any]]


class BulkQueryError(ValueError):
    """An inner query Shopify would reject with userErrors code INVALID."""


@dataclass
class Export:
    """A compiled bulk query: which root connection to read, how, and the node projector."""

    kind: str
    search: str | None
    sort_key: str
    reverse: bool
    project: Project


class _Compiler:
    def __init__(self, schema: GraphQLSchema, fragments: dict):
        self.schema = schema
        self.fragments = fragments
        self.connections = 0

    def node(self, type_: Any, nodes: list[FieldNode], depth: int) -> Project:
        """A projector for one object: the selected fields inline, nested connections as lines."""
        if is_abstract_type(type_):
            by_type = {t.name: self.node(t, nodes, depth) for t in self.schema.get_possible_types(type_)}
            return lambda src, out, lookup: by_type[src["__typename"]](src, out, lookup)
        subfields = collect_sub_fields(self.schema, self.fragments, {}, type_, nodes)
        fields: list[tuple[str, Callable]] = []
        emitters: list[Callable] = []
        for key, sub in subfields.items():
            name = sub[0].name.value
            if name == "__typename":
                fields.append((key, lambda src, out, lookup, n=type_.name: n))
                continue
            field_type = type_.fields[name].type
            named = get_named_type(field_type)
            if is_leaf_type(named):
                fields.append((key, self._leaf(name)))
            elif is_connection(named):
                if "id" not in subfields:
                    raise BulkQueryError(
                        f"The parent '{type_.name}' of the nested connection '{name}' must select the 'id' field."
                    )
                emitters.append(self._connection(named, name, sub, depth + 1))
            else:
                fields.append((key, self._object(named, name, sub, depth)))
        if not emitters:
            return lambda src, out, lookup: {key: get(src, out, lookup) for key, get in fields}

        def project(src: dict, out: list, lookup: data.Lookup) -> dict:
            line = {key: get(src, out, lookup) for key, get in fields}
            for emit in emitters:
                emit(src, out, lookup)
            return line

        return project

    @staticmethod
    def _leaf(name: str) -> Callable:
        if name == "legacyResourceId":
            return lambda src, out, lookup: src.get(name) or data.legacy_resource_id(src)
        return lambda src, out, lookup: src.get(name)

    def _object(self, named: Any, name: str, nodes: list[FieldNode], depth: int) -> Callable:
        project = self.node(named, nodes, depth)
        if named.name in REFERENCE_TYPES:
            wanted = selected_fields(self.schema, self.fragments, {}, named, nodes)

            def reference(src: dict, out: list, lookup: data.Lookup) -> Any:
                value = src.get(name)
                if value is None:
                    return None
                if not wanted <= value.keys():
                    value = lookup.resolve(named.name, value)
                return project(value, out, lookup)

            return reference

        # Inline objects and lists stay in their parent's line; a connection inside one (a refund's
        # refundLineItems) still writes its own lines, parented to the inline object's id.
        def inline(src: dict, out: list, lookup: data.Lookup) -> Any:
            value = src.get(name)
            if value is None:
                return None
            if isinstance(value, list):
                return [project(item, out, lookup) for item in value]
            return project(value, out, lookup)

        return inline

    def _connection(self, connection: Any, name: str, nodes: list[FieldNode], depth: int) -> Callable:
        self.connections += 1
        if self.connections > MAX_CONNECTIONS:
            raise BulkQueryError(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
        if depth > MAX_DEPTH:
            raise BulkQueryError(f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_DEPTH}.")
        project = self.node_selection(connection, nodes, depth)

        def emit(src: dict, out: list, lookup: data.Lookup) -> None:
            parent = src.get("id")
            for item in src.get(name) or ():
                slot = len(out)
                out.append(None)  # keep the child's line ahead of its own children
                line = project(item, out, lookup)
                line["__parentId"] = parent
                out[slot] = line

        return emit

    def node_selection(self, connection: Any, nodes: list[FieldNode], depth: int) -> Project:
        """The projector for a connection's nodes, selected as `edges { node }` or `nodes`."""
        node_type = get_named_type(connection.fields["nodes"].type)
        chosen: list[FieldNode] = []
        for sub in collect_sub_fields(self.schema, self.fragments, {}, connection, nodes).values():
            if sub[0].name.value == "nodes":
                chosen.extend(sub)
            elif sub[0].name.value == "edges":
                edge = get_named_type(connection.fields["edges"].type)
                for inner in collect_sub_fields(self.schema, self.fragments, {}, edge, sub).values():
                    if inner[0].name.value == "node":
                        chosen.extend(inner)
        if not chosen:
            raise BulkQueryError(f"The connection of type '{connection.name}' must select 'edges { node }' or 'nodes'.")
        return self.node(node_type, chosen, depth)


def compile_export(schema: GraphQLSchema, text: str) -> Export:
    """Check a bulk inner query the way Shopify does and compile it. Raises BulkQueryError."""
    try:
        document = parse(text)
    except GraphQLError as exc:
        raise BulkQueryError(f"Invalid bulk query: {exc.message}") from exc
    errors = validate(schema, document)
    if errors:
        raise BulkQueryError("Invalid bulk query: " + "; ".join(e.message for e in errors))
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation.value != "query":
        raise BulkQueryError("Invalid bulk query: it must contain exactly one query operation.")
    if operations[0].variable_definitions:
        raise BulkQueryError("Invalid bulk query: variables are not supported in bulk queries.")
    fragments = {d.name.value: d for d in document.definitions if not isinstance(d, OperationDefinitionNode)}
    roots = collect_fields(schema, fragments, {}, schema.query_type, operations[0].selection_set)
    if len(roots) != 1:
        raise BulkQueryError("Invalid bulk query: select exactly one top-level connection field.")
    (nodes,) = roots.values()
    name = nodes[0].name.value
    if name not in data.KINDS:
        raise BulkQueryError(f"Bulk queries must contain at least one connection; '{name}' is not one the sandbox exports.")
    args = {a.name.value: a.value for a in nodes[0].arguments}
    compiler = _Compiler(schema, fragments)
    compiler.connections = 1
    project = compiler.node_selection(get_named_type(schema.query_type.fields[name].type), nodes, 1)
    sort = args.get("sortKey")
    return Export(
        kind=data.KINDS[name],
        search=getattr(args.get("query"), "value", None),
        sort_key=sort.value if sort is not None else "ID",
        reverse=getattr(args.get("reverse"), "value", False),
        project=project,
    )


@dataclass
class BulkOperation:
    """One bulk query operation and its progress, as `BulkOperation` exposes it."""

    number: int
    shop: str
    query: str
    created_at: str
    group_objects: bool
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    partial_data_url: str | None = None
    cancel_requested: bool = False
    ready: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"

    def node(self) -> dict[str, Any]:
        """A point-in-time copy for GraphQL (UnsignedInt64 values travel as strings)."""
        return {
            "id": self.gid,
            "type": "QUERY",
            "status": self.status,
            "errorCode": self.error_code,
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": None if self.file_size is None else str(self.file_size),
            "url": self.url,
            "partialDataUrl": self.partial_data_url,
            "query": self.query,
        }


class BulkOperations:
    """Every bulk operation of one server, by shop; results go to `<store dir>/bulk/`."""

    def __init__(self, store_path: Path, base_url: str):
        self.store_path = store_path
        self.results = store_path.parent / "bulk"
        self.base_url = base_url
        self._ops: list[BulkOperation] = []
        self._lock = threading.Lock()
        self.last_rate: float | None = None  # root objects per second of the last finished export

    def of_shop(self, shop: str) -> list[BulkOperation]:
        with self._lock:
            return [op for op in self._ops if op.shop == shop]

    def get(self, shop: str, gid: str) -> BulkOperation | None:
        return next((op for op in self.of_shop(shop) if op.gid == gid), None)

    def start(
        self, schema: GraphQLSchema, shop: str, workspace: str, scopes: list[str], text: str, group: bool, now: int
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Start an export. Returns (the operation as created, userErrors)."""
        try:
            export = compile_export(schema, text)
        except BulkQueryError as exc:
            return None, [{"field": ["query"], "message": str(exc), "code": "INVALID"}]
        with self._lock:
            running = sum(1 for op in self._ops if op.shop == shop and op.status in ACTIVE)
            if running >= MAX_RUNNING:
                return None, [{
                    "field": None,
                    "message": f"A bulk query operation for this app and shop is already in progress: "
                               f"{MAX_RUNNING} may run at a time.",
                    "code": "OPERATION_IN_PROGRESS",
                }]
            op = BulkOperation(len(self._ops) + 1, shop, text, iso(now), group)
            self._ops.append(op)
        created = op.node()
        thread = threading.Thread(
            target=self._run, args=(op, export, workspace, scopes), name=f"shopify-bulk-{op.number}", daemon=True
        )
        thread.start()
        op.ready.wait()  # the snapshot is taken before the mutation answers
        return created, []

    def cancel(self, shop: str, gid: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        op = self.get(shop, gid)
        if op is None:
            return None, [{"field": ["id"], "message": "Bulk operation does not exist"}]
        if op.status not in ACTIVE:
            return op.node(), [{"field": ["id"], "message": f"A bulk operation cannot be canceled when it is {op.status.lower()}"}]
        op.cancel_requested = True
        op.status = "CANCELING"
        return op.node(), []

    def file(self, name: str) -> Path | None:
        path = self.results / name
        return path if path.parent == self.results and path.is_file() else None

    def _run(self, op: BulkOperation, export: Export, workspace: str, scopes: list[str]) -> None:
        token = secrets.token_urlsafe(16)
        self.results.mkdir(parents=True, exist_ok=True)
        partial = self.results / f"{op.shop}-{op.number}-{token}.partial.jsonl"
        conn = sqlite3.connect(self.store_path, timeout=60, isolation_level=None)
        started = time.monotonic()
        try:
            conn.execute("begin")  # one read snapshot for the whole export
            clock = orjson.loads(conn.execute("select value from meta where key = 'clock'").fetchone()[0])
            account = orjson.loads(conn.execute(
                "select config from accounts where workspace = ? and source = 'shopify'", (workspace,)
            ).fetchone()[0])
            op.status = "RUNNING" if not op.cancel_requested else op.status
            op.ready.set()
            search = data.parse_search(export.search, export.kind, tz=account.get("timezone", "UTC"), now=clock)
            sql, args = data.base_sql(workspace, export.kind, search, data.scope_filter(export.kind, scopes, clock))
            column = data.SORT_COLUMNS.get(export.sort_key)
            direction = "desc" if export.reverse else "asc"
            sql += f" order by {column + ' ' + direction + ', ' if column else ''}id {direction}"
            finished = self._write(op, export, conn.execute(sql, args), data.Lookup(conn, workspace), partial)
            if finished:
                final = partial.with_name(partial.name.replace(".partial", ""))
                partial.rename(final)
                op.file_size = final.stat().st_size
                op.url = f"{self.base_url}/bulk-results/{final.name}"
                op.status = "COMPLETED"
            else:
                op.partial_data_url = f"{self.base_url}/bulk-results/{partial.name}"
                op.status = "CANCELED"
            self.last_rate = op.root_object_count / max(time.monotonic() - started, 1e-6)
        except Exception:  # an export bug must surface as FAILED, like Shopify's internal errors
            op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
            if partial.exists():
                op.partial_data_url = f"{self.base_url}/bulk-results/{partial.name}"
        finally:
            op.completed_at = iso(clock) if "clock" in locals() else None
            op.ready.set()
            conn.close()

    @staticmethod
    def _write(op: BulkOperation, export: Export, rows: sqlite3.Cursor, lookup: data.Lookup, path: Path) -> bool:
        """Stream every root and its children to `path`. Returns False when canceled on the way."""
        dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        project, tracks_line_items = export.project, export.kind == "order"
        roots = objects = 0
        with path.open("wb") as out:
            chunk: list[bytes] = []
            children: list[bytes] = []
            while batch := rows.fetchmany(1000):
                if op.cancel_requested:
                    return False
                for row in batch:
                    node = orjson.loads(row[3])
                    if tracks_line_items:
                        lookup.track([node], replace=True)
                    lines: list = []
                    chunk.append(dumps(project(node, lines, lookup), option=newline))
                    (chunk if op.group_objects else children).extend(dumps(line, option=newline) for line in lines)
                    objects += 1 + len(lines)
                roots += len(batch)
                # Without groupObjects, the children of a batch of roots follow the whole batch, so
                # a client that expects each child right after its parent breaks here as on Shopify.
                chunk.extend(children)
                children.clear()
                out.write(b"".join(chunk))
                chunk.clear()
                op.root_object_count, op.object_count = roots, objects
        return True
