"""Same-run baselines over the same bulk JSONL the Shopify connector reads.

- dict path: an idiomatic dlt resource that yields one dict row per line (the connector's own
  flattening) and lets dlt's normalizer type and write them, into parquet as the connector does;
- fast path: the connector's Arrow conversion (`ingest.shopify.arrow`) over the same file;
- bound: DuckDB's `read_json` over the same file, splitting orders, their children and their
  refunds (`unnest`) into tables, with no flattening: what the machine can do at best.

All three read a local file, so the API's own time is out of these figures; each loads into its own
fresh DuckDB file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import orjson

from pipelines.ingest.pipeline import SyncStats, merge_hints
from pipelines.ingest.shopify import KEYS, queries, rows
from pipelines.ingest.shopify.arrow import ArrowTables
from pipelines.ingest.shopify.client import ShopifyClient
from pipelines.ingest.shopify.columns import column_hints
from pipelines.settings import Settings
from pipelines.workspaces import Workspace

DICT_BATCH_LINES = 2000


def download_orders(workspace: Workspace, settings: Settings, path: Path, since: str | None = None) -> Path:
    """Run the connector's orders bulk query once (orders created since `since`, an ISO time, or
    all) and keep its JSONL at `path`."""
    connector = workspace.connectors["shopify"]
    client = ShopifyClient(connector, connector.options.get("api_version") or settings.shopify_api_version,
                           SyncStats(), work_dir=path.parent)
    search = f"created_at:>='{since}'" if since else None
    operation = client.start_bulk(queries.bulk_query(queries.ORDERS, search), queries.BULK_RUN_MUTATION)
    with client.bulk_file(client.wait_bulk(operation, queries.BULK_POLL_QUERY)) as result:
        if result is None:
            raise RuntimeError(f"the orders bulk query of {workspace.id} returned no file")
        shutil.move(str(result), path)
    return path


def sample(path: Path, orders: int | None, out: Path) -> dict[str, int]:
    """The first `orders` orders of a bulk file with their children (every line when None)."""
    roots = lines = 0
    capped = False
    with path.open("rb") as source, out.open("wb") as target:
        for line in source:
            is_root = b'"__parentId"' not in line
            if is_root and orders is not None and roots >= orders and capped:
                break
            if is_root:
                roots += 1
            elif orders is not None and roots >= orders:
                capped = True  # the children of the last batch of roots follow it: keep them
            target.write(line)
            lines += 1
    return {"orders": roots, "lines": lines, "bytes": out.stat().st_size}


def _resources(batches: Iterator[dict[str, Any]]) -> list[Any]:
    """One merge resource per orders table, fed from one pass over `batches`, as in the connector."""
    parent = dlt.resource(lambda: batches, name="_orders_file", selected=False)
    resources = []
    for table in rows.TABLES["orders"]:
        primary_key, merge_key = KEYS[table]
        hints = merge_hints(primary_key, merge_key)

        def pick(batch: dict[str, Any], table: str = table) -> Iterator[Any]:
            found = batch.get(table)
            if found is not None and len(found):
                yield found

        columns = {name: {**column, **hints["columns"].get(name, {})}
                   for name, column in column_hints(table, primary_key).items()}
        resources.append(dlt.transformer(
            pick, name=table, data_from=parent, primary_key=hints["primary_key"],
            write_disposition=hints["write_disposition"], columns=columns, file_format="parquet",
        ))
    return resources


def _dict_batches(path: Path, workspace_id: str) -> Iterator[dict[str, list[dict[str, Any]]]]:
    splitter = rows.TableRows("orders", workspace_id)
    chunk: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for line in lines:
            chunk.append(orjson.loads(line))
            if len(chunk) >= DICT_BATCH_LINES:
                yield splitter.split(chunk)
                chunk = []
    if chunk:
        yield splitter.split(chunk)


def _load(name: str, batches: Iterator[dict[str, Any]], work: Path) -> dict[str, float]:
    """Extract, normalize and load `batches` into a fresh DuckDB file; seconds per step."""
    shutil.rmtree(work / name, ignore_errors=True)
    (work / name).mkdir(parents=True)
    source = dlt.source(lambda: _resources(batches), name="shopify", max_table_nesting=0)()
    pipeline = dlt.pipeline(pipeline_name=f"bench_{name}", pipelines_dir=str(work / name / "dlt"),
                            destination=dlt.destinations.duckdb(str(work / name / "warehouse.duckdb")),
                            dataset_name="shopify")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    pipeline.extract(source)
    seconds["extract"] = time.perf_counter() - started
    started = time.perf_counter()
    normalized = pipeline.normalize()
    seconds["normalize"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.load().raise_on_failed_jobs()
    seconds["load"] = time.perf_counter() - started
    seconds["rows"] = sum(n for table, n in normalized.row_counts.items() if not table.startswith("_dlt"))
    return seconds


def dict_path(path: Path, workspace_id: str, work: Path) -> dict[str, float]:
    return _load("dict_path", _dict_batches(path, workspace_id), work)


def fast_path(path: Path, workspace_id: str, work: Path) -> dict[str, float]:
    keys = {table: KEYS[table][0] for table in rows.TABLES["orders"]}
    return _load("fast_path", ArrowTables("orders", workspace_id, keys).from_file(path), work)


def read_json_bound(path: Path, work: Path) -> dict[str, float]:
    """DuckDB alone: read the JSONL once, write orders, line-level children and refunds as tables."""
    target = work / "read_json" / "warehouse.duckdb"
    shutil.rmtree(target.parent, ignore_errors=True)
    target.parent.mkdir(parents=True)
    started = time.perf_counter()
    with duckdb.connect(str(target)) as conn:
        conn.execute(f"create table lines as select * from read_json('{path}', format = 'newline_delimited', "
                     "maximum_object_size = 67108864)")
        conn.execute('create table orders as select * exclude ("__parentId", "__typename", refunds) '
                     'from lines where "__parentId" is null')
        conn.execute('create table order_refunds as select id as order_id, unnest(refunds, recursive := true) '
                     'from lines where "__parentId" is null and len(refunds) > 0')
        conn.execute('create table children as select * from lines where "__parentId" is not null')
        conn.execute("drop table lines")
        found = sum(conn.execute(f"select count(*) from {t}").fetchone()[0]
                    for t in ("orders", "order_refunds", "children"))
    return {"seconds": time.perf_counter() - started, "rows": found}
