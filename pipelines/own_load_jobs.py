"""dlt destinations that run a load job of our own in place of one of dlt's: DuckDB's first loads
(pipelines/duckdb_first_load.py) and Postgres' csv copies (pipelines/postgres_copy.py)."""

from __future__ import annotations

from typing import Any


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
