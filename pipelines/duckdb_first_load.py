"""dlt's DuckDB destination, with a merge table's first load written once.

dlt loads a merged table in two writes: each file into the staging table, then the merge (delete the
staged keys from the table, insert the staged rows deduplicated by key). Into an empty table the second
write is all of the load's cost again (docs/performance.md, "A merge table's first load written once").
Here a merge table's file goes straight into the table, deduplicated by its key, when the merge
could delete nothing: the table is empty, or (a column marked `x-merge-partition`, the project's
`workspace_id`: the merge's keys and scope all match on it) holds no row of the file's workspaces.
The file must also be the only one of its table in the package; otherwise it is staged as dlt does.

The check and the insert are one statement, so one transaction. A load killed after that statement
committed, and before dlt marked the job done, runs the job again: the table now holds the file's
workspace, so the file is staged, and the merge deletes the rows the killed attempt inserted (same
keys; a child table's scope, same parents) before inserting them once. The merge runs after a direct
insert too, over an empty staging table: it deletes and inserts nothing.

Only `delete-insert` merges by a primary key, without nested tables, hard deletes, a dedup sort or
a source filter take the direct path; they are all the raw tables `merge_hints` (ingest/pipeline.py)
declares. Postgres keeps dlt's loads: its files are csv copied with `COPY` or SQL inserts
(pipelines/postgres_copy.py), neither of which can deduplicate by key on the way in, so a deduplicated
direct insert would need the staging write it saves.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from dlt.common.schema.utils import get_columns_names_with_prop, get_dedup_sort_tuple, get_nested_tables
from dlt.common.storages.load_package import PackageStorage, ParsedLoadJobFileName
from dlt.destinations import duckdb
from dlt.destinations.impl.duckdb.duck import DuckDbClient, DuckDbCopyJob

from pipelines.own_load_jobs import DeclaredColumnOrder, OwnLoadJob, with_client

_JOB_FOLDERS = (PackageStorage.NEW_JOBS_FOLDER, PackageStorage.STARTED_JOBS_FOLDER,
                PackageStorage.COMPLETED_JOBS_FOLDER, PackageStorage.FAILED_JOBS_FOLDER)
_TABLE_LOCKS: dict[str, threading.Lock] = {}
_TABLE_LOCKS_GUARD = threading.Lock()


class FirstLoadCopyJob(DuckDbCopyJob):
    """dlt's DuckDB copy job, inserting a merge table's only file of the package straight into the
    table when the table holds none of the file's workspaces (is empty, for a table without them)."""

    def run(self) -> None:
        if not (self._direct_allowed() and self._insert_if_first_load()):
            super().run()

    def _direct_allowed(self) -> bool:
        table, sql = self._load_table, self._job_client.sql_client
        return (sql.is_staging_dataset_active and table.get("write_disposition") == "merge"
                and table.get("x-merge-strategy", "delete-insert") == "delete-insert"
                and bool(get_columns_names_with_prop(table, "primary_key"))
                and not get_columns_names_with_prop(table, "hard_delete")
                and get_dedup_sort_tuple(table) is None
                and not table.get("x-merge-source-filter")
                and not table.get("parent")
                and len(get_nested_tables(self._schema.tables, table["name"])) == 1
                and self._only_file_of_its_table())

    def _only_file_of_its_table(self) -> bool:
        """Whether the package holds no other data file of this table (a table whose rows came in
        several files is staged: a child table's scope would delete the lines a direct file put in)."""
        package = os.path.dirname(os.path.dirname(self._file_path))
        files = 0
        for folder in _JOB_FOLDERS:
            path = os.path.join(package, folder)
            for name in os.listdir(path) if os.path.isdir(path) else ():
                try:
                    parsed = ParsedLoadJobFileName.parse(name)
                except ValueError:
                    continue  # a failed job's exception file
                files += parsed.table_name == self.load_table_name and parsed.file_format != "sql"
        return files == 1

    def _insert_if_first_load(self) -> bool:
        """Insert the file into the (final) table if the table holds none of the file's partitions
        (no row at all, for a table without a partition column); whether it did."""
        sql, table = self._job_client.sql_client, self._load_table
        with sql.with_alternative_dataset_name(self._job_client.final_dataset_name):
            target = sql.make_qualified_table_name(table["name"])
        file = f"read_parquet('{self._file_path}', union_by_name=true)"
        keys = ", ".join(sql.escape_column_name(name) for name in get_columns_names_with_prop(table, "primary_key"))
        dedup = "" if table.get("x-stage-data-deduplicated") else f" QUALIFY row_number() OVER (PARTITION BY {keys}) = 1"
        partition = [sql.escape_column_name(name) for name in get_columns_names_with_prop(table, "x-merge-partition")]
        held = f" WHERE {partition[0]} IN (SELECT {partition[0]} FROM {file})" if len(partition) == 1 else ""
        with _table_lock(target):
            inserted = sql.execute_sql(f"INSERT INTO {target} BY NAME SELECT * FROM {file}"
                                       f" WHERE NOT EXISTS (SELECT 1 FROM {target}{held}){dedup}")
        return bool(inserted and inserted[0][0])


def _table_lock(table: str) -> threading.Lock:
    """One direct insert per table at a time in this process (DuckDB lets one process write)."""
    with _TABLE_LOCKS_GUARD:
        return _TABLE_LOCKS.setdefault(table, threading.Lock())


class FirstLoadDuckDbClient(DeclaredColumnOrder, OwnLoadJob, DuckDbClient):
    dlt_job, own_job, suffix = DuckDbCopyJob, FirstLoadCopyJob, ".parquet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.final_dataset_name = self.sql_client.dataset_name  # the staging one is switched in per job


first_load_duckdb = with_client(duckdb, FirstLoadDuckDbClient, "first_load_duckdb",
                                "dlt's DuckDB destination whose client writes a merge table's first load once.")
