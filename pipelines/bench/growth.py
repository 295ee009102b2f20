"""The growth curve of `abos bench --growth` (issue 13, point 7): time against data size, and the
incremental run's time against the size of the change.

At each scale of the large sandbox (e.g. 0.01, 0.1, 1) the pipeline runs in full on DuckDB, or on
Postgres with `--growth-warehouse postgres` (`stages.run_pipeline`: sync, dbt build, insights),
then the sandbox's clock moves until 0.1% of the orders and invoices changed and the pipeline
reruns, then until another 1% changed and it reruns again. The exponent is the slope of log(time) over log(size), fitted by least squares: 1 means
linear, below 1 means fixed costs still weigh (at small scales they do), above 1 that something
grows faster than the data.
"""

from __future__ import annotations

import math
import shutil
from datetime import date
from pathlib import Path
from typing import Any, Callable

from pipelines.bench.measure import PeakRss
from pipelines.bench.served import served, working_copy
from pipelines.bench.stages import run_pipeline

CHANGE_SHARES = (0.001, 0.01)
BASE_SIZE = "large"


def exponent(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of log(y) over log(x) through `points` (x, y); None below two sizes."""
    logs = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len({x for x, _ in logs}) < 2:
        return None
    mean_x = sum(x for x, _ in logs) / len(logs)
    mean_y = sum(y for _, y in logs) / len(logs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in logs) / sum((x - mean_x) ** 2 for x, _ in logs)
    return round(slope, 3)


def sized(scale: float) -> str:
    return BASE_SIZE if scale >= 1 else f"{BASE_SIZE}@{scale:g}"


def growth_phase(scales: list[float], *, seed: int, as_of: date, history_days: int, cache: Path, work: Path,
                 rss: PeakRss, progress: Callable[[str], None], postgres_url: str | None = None,
                 save: Callable[[dict[str, Any]], None] = lambda figures: None) -> dict[str, Any]:
    """Full and incremental runs at every scale, and the fitted exponents: on a DuckDB file of the work
    directory, or on `postgres_url` (a database dropped and created again at each scale). The figures
    so far go to `save` after each run."""
    from pipelines.bench import _change, _point_at, _recreate_database

    kind = "postgres" if postgres_url else "duckdb"

    points: list[dict[str, Any]] = []
    for scale in scales:
        size = sized(scale)
        store = cache / f"{size}-seed{seed}-{as_of.isoformat()}.sqlite"
        here = work / f"growth-{scale:g}"
        shutil.rmtree(here, ignore_errors=True)
        here.mkdir(parents=True)
        url = postgres_url or f"duckdb:///{here / 'duckdb' / 'warehouse.duckdb'}"
        if postgres_url:
            _recreate_database(postgres_url)
        point: dict[str, Any] = {"scale": scale, "size": size, "incremental": []}
        with served(store, size=size, seed=seed, as_of=as_of) as sandbox:
            rss.exclude.add(sandbox.pid)
            point["full"] = run_pipeline(*_point_at(sandbox, kind, url, here), rss, progress,
                                         f"growth {scale:g} / {kind}: full run")
        save(_figures(kind, [*points, point]))
        changed_store = working_copy(store, here / "sandbox-changed.sqlite", size=size, seed=seed, as_of=as_of)
        with served(changed_store, size=size, seed=seed, as_of=as_of) as sandbox:
            rss.exclude.add(sandbox.pid)
            for share in CHANGE_SHARES:
                change = _change(sandbox, history_days, point["full"], share)
                run = run_pipeline(*_point_at(sandbox, kind, url, here), rss, progress,
                                   f"growth {scale:g} / {kind}: incremental run after {change['changed_share']:.2%} "
                                   "changed")
                point["incremental"].append({"change": change, "run": run})
                save(_figures(kind, [*points, point]))
        changed_store.unlink()
        points.append(point)
    return _figures(kind, points)


def _figures(kind: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"warehouse": kind, "points": [_brief(point) for point in points], "exponents": exponents(points)}


def _rows(run: dict[str, Any]) -> int:
    return sum(source["rows"] for source in run["sources"].values())


def _brief(point: dict[str, Any]) -> dict[str, Any]:
    """A scale's figures: rows, total and stage seconds of each run, and what each source's sync did
    (`run_pipeline`'s `sources`: seconds, rows, requests, API waits, sync modes)."""
    def figures(run: dict[str, Any]) -> dict[str, Any]:
        return {"rows": _rows(run), "sources": run["sources"], "total_seconds": run["total_seconds"],
                "own_seconds": run["own_seconds"],
                "cpu_seconds": run["cpu_seconds"], "sandbox_cpu_seconds": run.get("sandbox_cpu_seconds"),
                "stage_cpu_seconds": run.get("stage_cpu_seconds"), "api_requests": run.get("api_requests"),
                "dbt_slowest": run.get("dbt_slowest"),
                "ingest_seconds": run["ingest_seconds"], "ingest_cpu_seconds": run["ingest_cpu_seconds"],
                "stages": run["stages"], "peak_rss_mib": run["peak_rss_mib"]}

    return {"scale": point["scale"], "size": point["size"], "full": figures(point["full"]),
            "incremental": [{"changed_share": step["change"]["changed_share"],
                             "changed_objects": step["change"]["changed_objects"], **figures(step["run"])}
                            for step in point["incremental"]]}


def exponents(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Time against rows synced in full (total and dbt alone), and, at the largest scale, the
    incremental run's time against the number of changed objects."""
    found: dict[str, Any] = {
        "full_total_vs_rows": exponent([(_rows(p["full"]), p["full"]["total_seconds"]) for p in points]),
        "full_dbt_vs_rows": exponent([(_rows(p["full"]), p["full"]["stages"]["dbt"]) for p in points]),
        "full_ingest_vs_rows": exponent([(_rows(p["full"]), p["full"]["ingest_seconds"]) for p in points]),
        "full_cpu_vs_rows": exponent([(_rows(p["full"]), p["full"]["cpu_seconds"]) for p in points]),
    }
    if points:
        largest = points[-1]["incremental"]
        found["incremental_total_vs_change"] = exponent(
            [(step["change"]["changed_objects"], step["run"]["total_seconds"]) for step in largest])
        found["incremental_share_of_full"] = {
            f"{step['change']['changed_share']:.2%}": round(step["run"]["total_seconds"]
                                                            / points[-1]["full"]["total_seconds"], 4)
            for step in largest}
    return found
