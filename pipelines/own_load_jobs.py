"""dlt destinations that run a load job of our own in place of one of dlt's: DuckDB's first loads
(pipelines/duckdb_first_load.py) and Postgres' csv copies (pipelines/postgres_copy.py); and their
clients' order of a table's new columns (`DeclaredColumnOrder`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A table hint (dlt's `additional_table_hints`): the table's declared columns, in the order the table
# gets them when they are created (`DeclaredColumnOrder`).
COLUMN_ORDER = "x-column-order"
_DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")  # dlt's own columns, last


def column_rank(declared: Sequence[str]) -> Any:
    """Sort key of a column (a dlt column schema) among a table's new ones: the `declared` columns in
    their order, then every other column by name, then dlt's own."""
    rank = {name: index for index, name in enumerate(declared)}

    def key(column: dict[str, Any]) -> tuple[int, int, str]:
        name = column["name"]
        if name in rank:
            return 0, rank[name], ""
        if name in _DLT_COLUMNS:
            return 2, _DLT_COLUMNS.index(name), ""
        return 1, 0, name

    return key


class DeclaredColumnOrder:
    """A mixin for a dlt SQL job client: a table that declares its columns' order (`COLUMN_ORDER`) gets
    its new columns, in its `CREATE TABLE` or its `ALTER TABLE … ADD`, in that order (`column_rank`).

    dlt creates them in the order its schema met them: the order of the first rows holding a value in
    each, so two syncs of the same data whose pages arrive in another order (Stripe's windows are read
    by several threads) created `stripe.invoices` with its columns in another order (docs/performance.md,
    "The raw tables' column order"). Every load names its columns (DuckDB inserts files `BY NAME`,
    Postgres copies a csv by its header, SQL inserts list them), so the table's order need not be the
    schema's. Columns already in the table keep their place.
    """

    def _create_table_update(self, table_name: str, storage_columns: Any) -> Sequence[Any]:
        new = super()._create_table_update(table_name, storage_columns)  # type: ignore[misc]
        declared = (self.schema.tables.get(table_name) or {}).get(COLUMN_ORDER)  # type: ignore[attr-defined]
        return sorted(new, key=column_rank(declared)) if declared and len(new) > 1 else new


class OwnLoadJob:
    """A mixin for a dlt job client: where dlt's client makes a `dlt_job` for a file whose name ends with
    `suffix`, `own_job` runs instead."""

    dlt_job: type
    own_job: type
    suffix: str = ""

    def create_load_job(self, table: Any, file_path: str, load_id: str, restore: bool = False) -> Any:
        job = super().create_load_job(table, file_path, load_id, restore)  # type: ignore[misc]
        if type(job) is self.dlt_job and file_path.endswith(self.suffix):
            job = self.own_job(file_path)
        return job


def with_client(factory: type, client: type, name: str, doc: str) -> type:
    """dlt's destination factory `factory` whose clients are `client`, named `name` (lower case, as dlt names
    its factories) in `client`'s module. It keeps dlt's destination type, so the pipelines' state and config
    sections are dlt's own, as before."""
    dlt_type = f"dlt.destinations.{factory.__name__}"
    return type(name, (factory,), {
        "__doc__": doc, "__module__": client.__module__, "__qualname__": name,
        "client_class": property(lambda self: client), "destination_type": property(lambda self: dlt_type),
    })
