"""The fast path of a full sync: a bulk operation's JSONL parsed straight to Arrow tables.

pyarrow's JSON reader parses the file block by block in C++; the columns are then flattened by the
same rules as `rows.flatten` (money bags, references, `<name>_<field>` objects, JSON lists,
timestamps, decimals) and cast to the declared column types, so dlt gets the same tables, columns,
types and values as from the dict rows of the paging path, without touching a row in Python.
Lists (tags, tax lines, discount allocations...) become JSON text, as dlt stores list values.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from pipelines.ingest.shopify.columns import COLUMN_TYPES
from pipelines.ingest.shopify.rows import DECIMAL_FIELDS, INTEGER_FIELDS, NESTED_TABLES, TABLES, TYPED_TABLES, snake

BLOCK_BYTES = 32 << 20  # JSONL bytes parsed at a time: bounds memory whatever the file size
# What Arrow raises on a block it cannot type (a number here, text there) or cast to a declared type.
ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
DECIMAL = pa.decimal128(38, 9)  # dlt's default decimal precision, as the dict path gets
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {"text": pa.string(), "bool": pa.bool_(), "bigint": pa.int64(), "decimal": DECIMAL,
               "double": pa.float64(), "timestamp": TIMESTAMP, "json": pa.string()}


def blocks(path: Path, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The file in pieces of about `size` bytes, each ending where a top-level object begins.

    Bulk JSONL writes each object's line, then its children's lines (which carry `__parentId`), so
    cutting before an object's own line keeps every object whole in one piece: the contract checks
    and sets aside whole objects (contract.py).
    """
    rest = b""
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            chunk = rest + chunk
            cut = _last_object_start(chunk)
            if cut == 0:  # one object longer than `size`: read on until the next one begins
                rest = chunk
                continue
            rest = chunk[cut:]
            yield chunk[:cut]
    if rest.strip():
        yield rest


def _last_object_start(chunk: bytes) -> int:
    """Offset of the last complete top-level line in `chunk` (0 if none but the first)."""
    end = chunk.rfind(b"\n") + 1
    while end > 0:
        start = chunk.rfind(b"\n", 0, end - 1) + 1
        if b'"__parentId"' not in chunk[start:end]:
            return start
        end = start
    return 0


class ArrowTables:
    """Turns bulk JSONL of one top-level object type into `{table: pyarrow.Table}` batches."""

    def __init__(self, root: str, workspace_id: str, keys: dict[str, tuple[str, ...]]):
        self.root = root
        self.workspace_id = workspace_id
        self.keys = keys  # primary key columns per table: never null, as their column hints say
        self._duckdb = duckdb.connect()  # serializes list columns to JSON (one connection: it costs ~0.1 s)

    def from_file(self, path: Path) -> Iterator[dict[str, pa.Table]]:
        """Every block's tables, unscreened (the benchmark's fast-path baseline)."""
        for block in blocks(path):
            yield self.split(block)

    def split(self, block: bytes) -> dict[str, pa.Table]:
        """Tables of the lines in `block` (whole lines only)."""
        try:  # parsed in 1 MiB blocks on every core
            lines = pajson.read_json(io.BytesIO(block))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # blocks typed a field differently
            # (a number here, a string there; a block whose refunds are all empty): one inference
            lines = pajson.read_json(io.BytesIO(block), read_options=pajson.ReadOptions(block_size=len(block)))
        tables: dict[str, list[pa.Table]] = {table: [] for table in TABLES[self.root]}
        roots, children = _by_typename(lines)
        if self.root == "orders" and "refunds" in roots.column_names:
            tables["order_refunds"].append(self._refunds(roots["id"], roots["refunds"]))
            roots = roots.drop_columns(["refunds"])
        tables[self.root].append(self._finish(self.root, roots, {}))
        for typename, part in children:
            if typename not in NESTED_TABLES:
                raise ValueError(f"unexpected nested Shopify node {typename!r} in a bulk result")
            table, parent_column = NESTED_TABLES[typename]
            extra = {parent_column: part["__parentId"]}
            if table in TYPED_TABLES:
                extra["type"] = pa.array([typename] * part.num_rows, pa.string())
            tables[table].append(self._finish(table, part.drop_columns(["__parentId", "__typename"]), extra))
        joined = {table: _concat(parts) for table, parts in tables.items() if parts}
        return {table: rows for table, rows in joined.items() if rows.num_rows}

    def _json(self, array: pa.Array) -> pa.Array:
        """List values as compact JSON text, as dlt stores list values (DuckDB's to_json, vectorized)."""
        if array.null_count == len(array):
            return pa.nulls(len(array), pa.string())
        values = pa.table({"v": array})  # noqa: F841 (the query below reads it by name)
        return self._duckdb.sql("select to_json(v)::varchar as j from values").to_arrow_table()["j"].combine_chunks()

    def _refunds(self, order_ids: pa.ChunkedArray, refunds: pa.ChunkedArray) -> pa.Table:
        refunds = refunds.combine_chunks()
        flat = pc.list_flatten(refunds)
        order_id = pc.take(order_ids.combine_chunks(), pc.list_parent_indices(refunds))
        if isinstance(flat.type, pa.StructType):
            own = pa.Table.from_arrays(flat.flatten(), names=[field.name for field in flat.type])
        else:  # no order of this block has a refund
            own = pa.table({"id": pa.array([], pa.string())})
        return self._finish("order_refunds", own, {"order_id": order_id})

    def _finish(self, table: str, own: pa.Table, extra: dict[str, pa.Array]) -> pa.Table:
        """Flattened columns of `own`, after `workspace_id` and `extra`, cast to the declared types."""
        columns: dict[str, pa.Array] = {"workspace_id": pa.array([self.workspace_id] * own.num_rows, pa.string())}
        columns.update({name: array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
                        for name, array in extra.items()})
        for name in own.column_names:
            array = own[name]
            if array.null_count == len(array):  # another node type's field (the block's columns are
                continue  # their union): it adds nothing, a declared column is null either way below
            columns.update(_flatten(name, array.combine_chunks(), "", self._json))
        # Every declared column, in declared order (as the dict path's column hints create them),
        # then any other field that has a value (schema evolution adds it, as it would a dict key).
        kept = {name: _cast(columns.pop(name, pa.nulls(own.num_rows)), ARROW_TYPES[data_type])
                for name, data_type in COLUMN_TYPES[table].items()}
        for name, array in columns.items():
            if array.null_count < len(array):
                kept[name] = array
        keys = self.keys.get(table, ())
        schema = pa.schema([pa.field(name, array.type, nullable=name not in keys) for name, array in kept.items()])
        return pa.table(list(kept.values()), schema=schema)


def _by_typename(lines: pa.Table) -> tuple[pa.Table, list[tuple[str | None, pa.Table]]]:
    """A block's top-level lines (without the bulk's own columns) and its child lines by `__typename`,
    in the order each type first appears, each in file order.

    The lines are put in that order by one stable sort, and each part is a slice of the result: the
    block's columns (the union of every node type's fields) are copied once, not once per type.
    """
    names = set(lines.column_names)
    internal = [c for c in ("__parentId", "__typename") if c in names]
    if "__parentId" not in names or lines["__parentId"].null_count == lines.num_rows:
        return lines.drop_columns(internal), []
    is_child = pc.is_valid(lines["__parentId"])
    kinds = pc.if_else(is_child, lines["__typename"], pa.scalar(None, lines["__typename"].type))
    order = pc.array_sort_indices(kinds, null_placement="at_start")  # stable: file order within a type
    lines = lines.take(order)
    first = lines["__parentId"].null_count  # the top-level lines come first
    counts = {row["values"]: row["counts"] for row in pc.value_counts(kinds).to_pylist()}
    offsets, at = {}, first
    for typename in sorted((k for k in counts if k is not None), key=lambda k: k.encode()):
        offsets[typename], at = at, at + counts[typename]
    if None in counts and counts[None] != first:  # a child line without a `__typename`
        raise ValueError("unexpected nested Shopify node None in a bulk result")
    appearing = [k for k in pc.unique(kinds.filter(is_child)).to_pylist()]
    parts = [(typename, lines.slice(offsets[typename], counts[typename])) for typename in appearing]
    return lines.slice(0, first).drop_columns(internal), parts


def _flatten(key: str, array: pa.Array, prefix: str, to_json: Callable[[pa.Array], pa.Array]) -> dict[str, pa.Array]:
    """One JSON field as flat columns, by `rows.flatten`'s rules."""
    if key in ("__typename", "__parentId"):
        return {}
    column = prefix + snake(key.removesuffix("Set") if key.endswith("Set") else key)
    kind = array.type
    if isinstance(kind, pa.StructType):
        fields = {field.name for field in kind}
        parts = dict(zip([field.name for field in kind], array.flatten()))
        if "shopMoney" in fields and fields <= {"shopMoney", "presentmentMoney"}:
            out = {}
            for part, suffix in (("shopMoney", ""), ("presentmentMoney", "_presentment")):
                money = _money_parts(parts.get(part), len(array))
                out[f"{column}{suffix}_amount"] = _cast(money["amount"], DECIMAL)
                out[f"{column}{suffix}_currency"] = money["currencyCode"]
            return out
        out = {}
        if {"amount", "currencyCode"} <= fields:  # a MoneyV2 (possibly one member of a union)
            out[f"{column}_amount"] = _cast(parts.pop("amount"), DECIMAL)
            out[f"{column}_currency"] = parts.pop("currencyCode")
        for name, part in parts.items():
            out.update(_flatten(name, part, column + "_", to_json))
        return out
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return {column: to_json(array)}
    if key in DECIMAL_FIELDS:
        return {column: _cast(array, DECIMAL)}
    if key in INTEGER_FIELDS:
        return {column: _cast(array, pa.int64())}
    if key.endswith("At"):
        return {column: _cast(array, TIMESTAMP)}
    return {column: array}


def _money_parts(money: pa.Array | None, length: int) -> dict[str, pa.Array]:
    if money is None or not isinstance(money.type, pa.StructType):
        return {"amount": pa.nulls(length, pa.string()), "currencyCode": pa.nulls(length, pa.string())}
    parts = dict(zip([field.name for field in money.type], money.flatten()))
    return {name: parts.get(name, pa.nulls(length, pa.string())) for name in ("amount", "currencyCode")}


def _cast(array: pa.Array, target: pa.DataType) -> pa.Array:
    # A naive timestamp from the JSON reader is UTC (Shopify writes `Z` times), which is what this cast assumes.
    return array if array.type == target else array.cast(target)


def _concat(parts: list[pa.Table]) -> pa.Table:
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
