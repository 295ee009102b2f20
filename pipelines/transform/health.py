"""Which workspaces the last dbt build failed, read from the failures its tests stored.

A dbt test that can fail one workspace alone has `severity: warn` (so every other workspace's
models still build) and `store_failures: true`: its failing rows land in `audit.<test name>`, each
with the `workspace_id` it concerns and, where the test says why, a `reason` (and the `model` whose
figures it withholds). Before a workspace's insights and reports run, `workspace_failures` reads
those rows, and the asset fails that workspace's partition with them (docs/operations.md).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from pipelines.transform import manifest_path
from pipelines.warehouse import Reads, Warehouse


@dataclass(frozen=True)
class TestFailure:
    """Rows a dbt test stored against one workspace, and what they mean."""

    test: str
    model: str
    reason: str

    def __str__(self) -> str:
        return f"{self.model}: {self.reason} (dbt test {self.test})"


def stored_failure_tables(manifest: Path | None = None) -> dict[str, tuple[str, str]]:
    """Test name -> (the `schema.table` its failures are stored in, the model it tests), for every
    test of the current manifest that stores them (so a removed test's leftover table is never read)."""
    path = manifest or manifest_path()
    stat = path.stat()
    # Every insights asset of every workspace asks; the manifest (megabytes of JSON) is parsed once
    # per version of the file.
    return dict(_stored_failure_tables(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=4)
def _stored_failure_tables(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, tuple[str, str]], ...]:
    nodes = json.loads(path.read_text())["nodes"].values()
    return tuple({
        node["name"]: (f"{node['schema']}.{node.get('alias') or node['name']}",
                       (node.get("attached_node") or node["depends_on"]["nodes"][-1]).split(".")[-1])
        for node in nodes
        if node["resource_type"] == "test" and node["config"].get("store_failures")
    }.items())


def workspace_failures(warehouse: Warehouse | Reads, workspace_id: str, manifest: Path | None = None) -> list[TestFailure]:
    """What the stored test failures say about `workspace_id`: one entry per failing test and reason."""
    tables = stored_failure_tables(manifest)
    if not tables:
        return []
    schemas = sorted({table.split(".")[0] for table, _ in tables.values()})
    present = warehouse.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        f"where table_schema in ({', '.join(['%s'] * len(schemas))})", schemas)
    columns: dict[str, set[str]] = {}
    for schema, table, column in present.itertuples(index=False):
        columns.setdefault(f"{schema}.{table}", set()).add(column.lower())
    failures: list[TestFailure] = []
    for test, (table, tested) in sorted(tables.items()):
        have = columns.get(table, set())
        if "workspace_id" not in have:
            continue  # not stored yet, or a test about no workspace in particular
        model = "model" if "model" in have else f"'{tested}'"
        reason = "reason" if "reason" in have else "null"
        rows = warehouse.query(
            f"select {model} as model, {reason} as reason, count(*) as n from {table} "
            "where workspace_id = %s group by 1, 2 order by 1, 2", [workspace_id])
        for found_model, found_reason, n in rows.itertuples(index=False):
            failures.append(TestFailure(test, found_model, found_reason or f"{n} rows fail this test"))
    return failures



def require_passing(warehouse: Warehouse | Reads, workspace_id: str) -> None:
    """Fail the calling asset's partition, naming each model and cause, if dbt's tests failed `workspace_id`."""
    failures = workspace_failures(warehouse, workspace_id)
    if failures:
        raise dg.Failure(
            description=f"workspace {workspace_id!r}: its figures are withheld, dbt tests failed it: "
                        + "; ".join(str(failure) for failure in failures),
            metadata={"workspace": workspace_id, "failed_tests": ", ".join(sorted({f.test for f in failures}))},
            allow_retries=False,
        )
