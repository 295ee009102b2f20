"""dlt's Postgres destination, its csv files copied with NULL and the empty string kept apart.

On Postgres dlt writes an Arrow table (Shopify's bulk rows, Stripe's `to_arrow` batches) as a csv
file with pyarrow's writer, which quotes every text value and leaves a null an empty unquoted field,
and loads it with `COPY … (FORMAT CSV)`. dlt's copy job adds `FORCE_NULL` for every nullable column,
because its writer for dict rows (Python's csv module) can write a null only as `""`; but
`FORCE_NULL` reads a quoted empty string as NULL too, so every empty text value of an Arrow table
became NULL on Postgres (and stayed '' on DuckDB). The job here copies without it: an unquoted
empty field is NULL, a quoted one an empty string, as `COPY`'s CSV format reads them by default.

That is exact only for files of pyarrow's writer, so dict rows must never be written as csv for this
destination: `Warehouse.load_file_format` (the one place the raw tables' format is chosen) leaves
Postgres to dlt's choice per item, csv for Arrow tables and SQL inserts (`insert_values`) for dict
rows. tests/integration/test_postgres_load_values.py loads awkward text both ways and reads it back.
"""

from __future__ import annotations

import csv

from dlt.common.destination.configuration import CsvFormatConfiguration
from dlt.common.destination.exceptions import DestinationInvalidFileFormat
from dlt.common.storages.file_storage import FileStorage
from dlt.destinations import postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient, PostgresCsvCopyJob

from pipelines.own_load_jobs import DeclaredColumnOrder, OwnLoadJob, with_client

_COPY_BUFFER = 1 << 20  # bytes handed to the server per call (dlt's job: 8 KiB)


class ExactCsvCopyJob(PostgresCsvCopyJob):
    """dlt's csv copy job without `FORCE_NULL`: an empty string stays an empty string."""

    def run(self) -> None:
        sql = self._job_client.sql_client
        config = self._job_client.config.csv_format or CsvFormatConfiguration()
        if not config.include_header:
            raise DestinationInvalidFileFormat("postgres", "csv", self._file_path,
                                               "the copy names its columns from the file's header")
        with FileStorage.open_zipsafe_ro(self._file_path, "rb") as file:
            header = next(csv.reader([file.readline().decode(config.encoding)], delimiter=config.delimiter), [])
            known = self._job_client.schema.get_table_columns(self.load_table_name)
            if unknown := [name for name in header if name not in known]:
                raise DestinationInvalidFileFormat("postgres", "csv", self._file_path,
                                                   f"columns {unknown} are not in table {self.load_table_name}")
            columns = ",".join(sql.escape_column_name(name) for name in header)
            copy = (f"COPY {sql.make_qualified_table_name(self.load_table_name)} ({columns}) FROM STDIN WITH "
                    f"(FORMAT CSV, DELIMITER '{config.delimiter}', NULL '', ENCODING '{config.encoding}')")
            with sql.begin_transaction(), sql.native_connection.cursor() as cursor:
                cursor.copy_expert(copy, file, size=_COPY_BUFFER)


class ExactCsvPostgresClient(DeclaredColumnOrder, OwnLoadJob, PostgresClient):
    dlt_job, own_job = PostgresCsvCopyJob, ExactCsvCopyJob


exact_csv_postgres = with_client(postgres, ExactCsvPostgresClient, "exact_csv_postgres",
                                 "dlt's Postgres destination whose csv files keep an empty string apart from NULL.")
