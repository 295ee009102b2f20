"""dlt's DuckDB destination, with a merge table's first load written once instead of twice.

dlt loads a `merge` table in two writes: each file into the staging dataset, then one merge (delete
the staged keys from the final table, insert the staged rows deduplicated by primary key). Into an
empty final table the second write is the whole cost of the merge, as much CPU as the first
(docs/performance.md, "The Stripe sync's CPU at `large@0.1`"). Here a file of a merge table goes
straight into its final table when that table is empty and the file's rows are unique by primary
key, checked and inserted in one transaction, one file of a table at a time; otherwise it is staged
as dlt does. The merge runs as before, over what was staged (nothing, in a first load).

A killed load stays exact: a file inserted straight and committed, whose job was not yet marked
done, runs again in the next run, finds the table no longer empty and is staged, so the merge
deletes the keys it had inserted before inserting them once. Another file of the same table, or a
later workspace's first load into the shared tables, is staged too, and the merge's key match does
what its dedup did. So the final table holds, key for key, the rows the two writes would have left.
"""

from __future__ import annotations

import threading
from typing import Any

from dlt.common.destination.reference import DestinationReference
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from dlt.destinations import duckdb as _dlt_duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _table_lock(qualified_name: str) -> threading.Lock:
    """One lock per final table in this process: dlt's load workers are threads, and two files
    of one table must not both find it empty."""
    with _locks_guard:
        return _locks.setdefault(qualified_name, threading.Lock())


class FirstLoadCopyJob(DuckDbCopyJob):
    """dlt's DuckDB copy job; a staged parquet file of a merge table goes straight into the final
    table when that is empty and the file's keys are unique (see the module's docstring)."""

    def run(self) -> None:
        sql = self._job_client.sql_client
        table = self._load_table
        keys = get_columns_names_with_prop(table, "primary_key")
        if (table.get("write_disposition") == "merge" and sql.is_staging_dataset_active and keys
                and ParsedLoadJobFileName.parse(self._file_path).file_format == "parquet"
                and self._into_empty_table(keys)):
            return
        super().run()

    def _into_empty_table(self, keys: list[str]) -> bool:
        client = self._job_client
        sql = client.sql_client
        dataset, _ = DuckDbClient.create_dataset_names(client.schema, client.config)  # as dlt names it
        with sql.with_alternative_dataset_name(dataset):
            final = sql.make_qualified_table_name(self.load_table_name)
        source = f"read_parquet('{self._file_path}', union_by_name=true)"
        key_list = ", ".join(sql.escape_column_name(key) for key in keys)
        with _table_lock(final), sql.begin_transaction():
            if sql.execute_sql(f"SELECT 1 FROM {final} LIMIT 1"):
                return False
            rows, distinct = sql.execute_sql(f"SELECT count(*), count(DISTINCT ({key_list})) FROM {source}")[0]
            if rows != distinct:
                return False  # the merge's dedup decides which row of a key stays, as before
            sql.execute_sql(f"INSERT INTO {final} BY NAME SELECT * FROM {source}")
        return True


class FirstLoadDuckDbClient(DuckDbClient):
    """dlt's DuckDB client whose copy jobs are `FirstLoadCopyJob`s."""

    def create_load_job(self, table: Any, file_path: str, load_id: str, restore: bool = False) -> Any:
        job = super().create_load_job(table, file_path, load_id, restore)
        return FirstLoadCopyJob(file_path) if type(job) is DuckDbCopyJob else job


class duckdb(_dlt_duckdb):  # noqa: N801 (dlt's destination factories are named after the destination)
    """dlt's `duckdb` destination with `FirstLoadDuckDbClient`; the same destination type and name,
    so pipeline state and stored schemas see no change of destination."""

    @property
    def client_class(self) -> type[DuckDbClient]:
        return FirstLoadDuckDbClient

    @property
    def destination_type(self) -> str:
        return _DESTINATION_TYPE


_DESTINATION_TYPE = DestinationReference.normalize_type(f"{_dlt_duckdb.__module__}.{_dlt_duckdb.__qualname__}")
