"""Shopify bulk query operations: validate the inner query, export JSONL in a process of its own.

The export reads one consistent snapshot of the store (a SQLite read transaction opened before the
mutation returns) and never runs graphql-core per node: the inner query's selection set is compiled
once into plain functions that copy the selected fields out of each stored dict. Nodes of nested
connections become their own lines with `__parentId`, as on Shopify.

Exports run apart from the API, as Shopify's run beside its API servers: in a thread of the server's
interpreter, a large export and the requests of both APIs the sandbox serves held one interpreter lock
and slowed each other down (docs/performance.md). `BulkOperations` hands each export to one export
process per server (`pipelines.sandbox.shopify.exports`), which runs it in a thread of its own and
reports back over a pipe.
"""

from __future__ import annotations

import itertools
import secrets
import sqlite3
import subprocess
import sys
import threading
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
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    parse,
    validate,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields

from pipelines import json_io
from pipelines.sandbox.core.times import iso
from pipelines.sandbox.shopify import data
from pipelines.sandbox.shopify.cost import is_connection, selected_fields

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
        self.names = itertools.count()  # unique variable names in generated source

    def node(self, type_: Any, nodes: list[FieldNode], depth: int) -> Project:
        """A projector for one object: the selected fields inline, nested connections as lines.

        The projector is generated as Python source: one dict display per object, with plain
        nested objects (money bags, addresses) inlined, because a function call per field would
        halve the export rate on a million orders.
        """
        if is_abstract_type(type_):
            by_type = {t.name: self.node(t, nodes, depth) for t in self.schema.get_possible_types(type_)}
            return lambda src, out, lookup: by_type[src["__typename"]](src, out, lookup)
        env: dict[str, Any] = {"legacy": data.legacy_resource_id}
        emits: list[str] = []
        display = self._display(type_, nodes, depth, "src", env, emits)
        calls = "".join(f"    {emit}(src, out, lookup)\n" for emit in emits)
        source = f"def project(src, out, lookup):\n    line = {display}\n{calls}    return line\n"
        exec(source, env)  # noqa: S102 - the source is built from validated GraphQL names only
        return env["project"]

    def _display(self, type_: Any, nodes: list[FieldNode], depth: int, var: str, env: dict, emits: list) -> str:
        """Source of a dict display holding the fields selected on `var`, an object of `type_`."""
        subfields = collect_sub_fields(self.schema, self.fragments, {}, type_, nodes)
        entries = []
        for key, sub in subfields.items():
            name = sub[0].name.value
            if name == "__typename":
                entries.append(f"{key!r}: {type_.name!r}")
                continue
            field_type = type_.fields[name].type
            named = get_named_type(field_type)
            if is_leaf_type(named):
                fallback = f" or legacy({var})" if name == "legacyResourceId" else ""
                entries.append(f"{key!r}: ({var}.get({name!r}){fallback})")
                continue
            number = next(self.names)
            helper, value, item = f"h{number}", f"v{number}", f"i{number}"
            if is_connection(named):
                if "id" not in subfields:
                    raise BulkQueryError(
                        f"The parent '{type_.name}' of the nested connection '{name}' must select the 'id' field."
                    )
                env[helper] = self._connection(named, name, sub, depth + 1)
                emits.append(helper)
                continue
            # Inline objects and lists stay in their parent's line. Plain ones are inlined; those
            # holding a connection (a refund's refundLineItems) or needing a lookup get a helper.
            many = is_list_type(get_nullable_type(field_type))
            target = item if many else value
            if self._plain(named, sub):
                inner = self._display(named, sub, depth, target, env, emits)
            else:
                env[helper] = self._object(named, sub, depth)
                inner = f"{helper}({target}, out, lookup)"
            expr = f"[{inner} for {item} in {value}]" if many else inner
            entries.append(f"{key!r}: (None if ({value} := {var}.get({name!r})) is None else {expr})")
        return "{" + ", ".join(entries) + "}"

    def _plain(self, type_: Any, nodes: list[FieldNode]) -> bool:
        """Whether an object can be copied inline: concrete, no reference, no connection inside."""
        if is_abstract_type(type_) or type_.name in REFERENCE_TYPES:
            return False
        for sub in collect_sub_fields(self.schema, self.fragments, {}, type_, nodes).values():
            if sub[0].name.value == "__typename":
                continue
            named = get_named_type(type_.fields[sub[0].name.value].type)
            if not is_leaf_type(named) and (is_connection(named) or not self._plain(named, sub)):
                return False
        return True

    def _object(self, named: Any, nodes: list[FieldNode], depth: int) -> Project:
        project = self.node(named, nodes, depth)
        if named.name not in REFERENCE_TYPES:
            return project
        wanted = selected_fields(self.schema, self.fragments, {}, named, nodes)

        def reference(value: dict, out: list, lookup: data.Lookup) -> dict:
            """`{"id": gid}` references are resolved when more than they hold is selected."""
            if not wanted <= value.keys():
                value = lookup.resolve(named.name, value)
            return project(value, out, lookup)

        return reference

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
            raise BulkQueryError(f"The connection of type '{connection.name}' must select 'edges {{ node }}' or 'nodes'.")
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
    ready: threading.Event = field(default_factory=threading.Event, repr=False)
    path: Path | None = None  # the file being written (`.partial` until it is whole)
    clock: int | None = None  # the store's clock in the export's snapshot
    exporter: subprocess.Popen | None = field(default=None, repr=False)  # the process running it

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
        self._exporter: subprocess.Popen | None = None

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
            compile_export(schema, text)  # the export process compiles it again; checked here to answer
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
        self.results.mkdir(parents=True, exist_ok=True)
        op.path = self.results / f"{op.shop}-{op.number}-{secrets.token_urlsafe(16)}.partial.jsonl"
        if not self._send({"start": op.number, "store": str(self.store_path), "query": text, "workspace": workspace,
                           "scopes": scopes, "group": group, "path": str(op.path)}, op):
            self._end(op, "failed")
        op.ready.wait()  # the snapshot is taken before the mutation answers
        return created, []

    def cancel(self, shop: str, gid: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        op = self.get(shop, gid)
        if op is None:
            return None, [{"field": ["id"], "message": "Bulk operation does not exist"}]
        with self._lock:  # not between the export's end and its status
            if op.status not in ACTIVE:
                return op.node(), [{"field": ["id"], "message": f"A bulk operation cannot be canceled when it is {op.status.lower()}"}]
            op.status = "CANCELING"
            answer = op.node()  # the export may stop before this answer goes out
        self._send({"cancel": op.number}, op)  # if the process is gone, its follower fails the export
        return answer, []

    def file(self, name: str) -> Path | None:
        path = self.results / name
        return path if path.parent == self.results and path.is_file() else None

    def close(self) -> None:
        """End the export process and the exports still running (the server is stopping)."""
        with self._lock:
            exporter, self._exporter = self._exporter, None
        if exporter is not None:
            exporter.terminate()
            exporter.wait()

    def _send(self, command: dict[str, Any], op: BulkOperation) -> bool:
        """Write a command to the export process, started first if there is none (or it died).
        Returns whether it could be written."""
        with self._lock:
            if self._exporter is None or self._exporter.poll() is not None:
                # The process ends at the end of its input: with this server.
                self._exporter = subprocess.Popen([sys.executable, "-m", "pipelines.sandbox.shopify.exports"],
                                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                threading.Thread(target=self._follow, args=(self._exporter,), name="shopify-bulk-exports",
                                 daemon=True).start()
            exporter = self._exporter
            if command.get("start"):
                op.exporter = exporter
            try:
                exporter.stdin.write(orjson.dumps(command) + b"\n")
                exporter.stdin.flush()
            except (BrokenPipeError, ValueError):  # the process died (its follower fails what it ran)
                return False
            return True

    def _follow(self, exporter: subprocess.Popen) -> None:
        """Apply what the export process reports to the operations, until its output ends; an operation
        still active then failed with it."""
        for line in exporter.stdout:
            report = orjson.loads(line)
            op = self._ops[report["number"] - 1]
            if report["event"] == "snapshot":
                op.clock = report["clock"]
                op.status = "RUNNING"
                op.ready.set()
                continue
            op.root_object_count, op.object_count = report["roots"], report["objects"]
            if report["event"] != "progress":  # "completed", "canceled" or "failed"
                self._end(op, report["event"])
        with self._lock:
            ended = [op for op in self._ops if op.exporter is exporter and op.status in ACTIVE]
        for op in ended:
            self._end(op, "failed")

    def _end(self, op: BulkOperation, how: str) -> None:
        """Finish `op`, unless it has ended: "completed" (the file renamed to its final name), "canceled"
        or "failed"."""
        with self._lock:
            if op.status in ACTIVE:
                self._finish(op, how)
        op.ready.set()

    def _finish(self, op: BulkOperation, how: str) -> None:
        op.completed_at = None if op.clock is None else iso(op.clock)  # the snapshot's clock, as createdAt
        if how == "completed":
            final = op.path.with_name(op.path.name.replace(".partial", ""))
            op.path.rename(final)
            op.file_size = final.stat().st_size
            op.url = f"{self.base_url}/bulk-results/{final.name}"
            op.status = "COMPLETED"
        elif how == "canceled":
            op.partial_data_url = f"{self.base_url}/bulk-results/{op.path.name}"
            op.status = "CANCELED"
        else:  # an export bug must surface as FAILED, like Shopify's internal errors
            if op.path is not None and op.path.exists():
                op.partial_data_url = f"{self.base_url}/bulk-results/{op.path.name}"
            op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"


def export(schema: GraphQLSchema, command: dict[str, Any], *, snapshot: Callable[[int], None],
           progress: Callable[[int, int], None], canceled: Callable[[], bool]) -> bool:
    """Run one export (`BulkOperations._send`'s start command): take the store's snapshot and tell
    `snapshot` its clock, then write every root and its children to the command's path, telling
    `progress` the counts after each batch. Returns False when `canceled` said so on the way."""
    compiled = compile_export(schema, command["query"])
    workspace = command["workspace"]
    conn = sqlite3.connect(command["store"], timeout=60, isolation_level=None)
    try:
        conn.execute("begin")  # one read snapshot for the whole export
        clock = orjson.loads(conn.execute("select value from meta where key = 'clock'").fetchone()[0])
        account = orjson.loads(conn.execute(
            "select config from accounts where workspace = ? and source = 'shopify'", (workspace,)
        ).fetchone()[0])
        snapshot(clock)
        search = data.parse_search(compiled.search, compiled.kind, tz=account.get("timezone", "UTC"), now=clock)
        scopes = data.scope_filter(compiled.kind, command["scopes"], clock)
        sql, args = data.base_sql(workspace, compiled.kind, search, scopes)
        column = data.SORT_COLUMNS.get(compiled.sort_key)
        direction = "desc" if compiled.reverse else "asc"
        sql += f" order by {column + ' ' + direction + ', ' if column else ''}id {direction}"
        return _write(compiled, command["group"], conn.execute(sql, args), data.Lookup(conn, workspace),
                      Path(command["path"]), progress, canceled)
    finally:
        conn.close()


def _write(export: Export, group: bool, rows: sqlite3.Cursor, lookup: data.Lookup, path: Path,
           progress: Callable[[int, int], None], canceled: Callable[[], bool]) -> bool:
    """Stream every root and its children to `path`. Returns False when canceled on the way."""
    project, tracks_line_items = export.project, export.kind == "order"
    roots = objects = 0
    with path.open("wb") as out:
        chunk: list[bytes] = []
        children: list[bytes] = []
        while batch := rows.fetchmany(1000):
            if canceled():
                return False
            for row in batch:
                node = json_io.loads(row[3], wide_ints=False)
                if tracks_line_items:
                    lookup.track([node], replace=True)
                lines: list = []
                chunk.append(json_io.dumps(project(node, lines, lookup), line=True))
                (chunk if group else children).extend(json_io.dumps(line, line=True) for line in lines)
                objects += 1 + len(lines)
            roots += len(batch)
            # Without groupObjects, the children of a batch of roots follow the whole batch, so
            # a client that expects each child right after its parent breaks here as on Shopify.
            chunk.extend(children)
            children.clear()
            out.write(b"".join(chunk))
            chunk.clear()
            progress(roots, objects)
    return True
