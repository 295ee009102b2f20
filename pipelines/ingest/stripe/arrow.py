"""Stripe rows as Arrow tables: dlt loads them as they are instead of normalizing row by row.

A batch of flattened rows (shapes.flatten) becomes one `pyarrow.Table` whose columns carry the types
dlt's dict normalizer would give them: text, bigint, double, bool, and `json` for lists and maps,
serialized as JSON text by dlt's own serializer (as dlt stores them), so the loaded rows are the
same either way. The table's column types are declared to dlt with the batch: the json columns as
hints (an Arrow string is text otherwise), the rest by the Arrow schema.

A batch the dict normalizer would type differently is left as dict rows (`None`): a column whose
values mix Python types (an int here, a float there: dlt would add a `__v_double` variant column),
or whose type differs from the one the table already has (but lists and maps for a `text` column:
dlt would store the same JSON text there, `_AS_TEXT`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from dlt.common import json as dlt_json

# Python type of a column's values -> (Arrow type, dlt data type)
TYPES: dict[type, tuple[pa.DataType, str]] = {
    str: (pa.string(), "text"),
    bool: (pa.bool_(), "bool"),
    int: (pa.int64(), "bigint"),
    float: (pa.float64(), "double"),
    dict: (pa.string(), "json"),
    list: (pa.string(), "json"),
}

# Lists and maps for a column the table types `text`: dlt's dict normalizer stores them there as the
# same serializer's text (`json_to_str`), so the Arrow table's JSON text loads the same values. A
# first sync's Arrow tables leave their json columns typed `text` in the stored schema (the
# warehouse's column is JSON), so without this every later sync's batches of objects went through
# the dict normalizer, row by row: after a 1% change at `large@0.3` dlt's steps 7.5 → 5.6 CPU s
# (docs/performance.md, "The incremental run outside dbt").
_AS_TEXT = ("text", "json")
# An empty (or absent) JSON value's text, as dlt's serializer writes it.
_EMPTY_JSON: dict[type, str | None] = {type(None): None, list: dlt_json.dumps([]), dict: dlt_json.dumps({})}


def to_arrow(rows: list[dict[str, Any]], known: Mapping[str, Mapping[str, Any]],
             keys: tuple[str, ...]) -> tuple[pa.Table, dict[str, str]] | None:
    """`rows` as one Arrow table and the dlt type of each column, or None where dict rows must stay.

    Args:
        rows: flattened rows of one table (absent keys and None are the same: null).
        known: the table's columns as dlt knows them already (hints, earlier loads): name -> column.
        keys: the primary key columns (not nullable, as their hints say).
    """
    values: dict[str, list[Any]] = {}
    count = len(rows)
    for index, row in enumerate(rows):
        for name, value in row.items():
            try:
                values[name][index] = value
            except KeyError:  # the column's first value
                values[name] = [None] * count
                values[name][index] = value
    arrays, types = {}, {}
    for name, column in values.items():
        kinds = set(map(type, column)) - {type(None)}
        if not kinds:
            continue  # all null: the dict normalizer adds no column for it either
        if len(kinds) > 1 and kinds != {dict, list}:
            return None
        arrow_type, data_type = TYPES.get(kinds.pop(), (None, None))
        declared = (known.get(name) or {}).get("data_type")
        if arrow_type is None or (declared is not None and declared != data_type and (declared, data_type) != _AS_TEXT):
            return None
        if data_type == "json":  # most are empty ([] or {}): their text needs no serializer
            column = [_EMPTY_JSON[type(value)] if not value else dlt_json.dumps(value) for value in column]
        try:
            arrays[name] = pa.array(column, arrow_type)
        except (pa.ArrowInvalid, OverflowError):  # an int beyond 64 bits: dlt keeps it as a decimal
            return None
        types[name] = data_type
    schema = pa.schema([pa.field(name, array.type, nullable=name not in keys) for name, array in arrays.items()])
    return pa.table(list(arrays.values()), schema=schema), types
