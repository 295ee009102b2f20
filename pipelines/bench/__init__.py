"""`abos bench`: how fast and how big the pipeline runs, measured end to end (docs/performance.md).

One run of the benchmark, over the `large` sandbox or a `--scale` fraction of it:
1. full sync of every workspace, `dbt build` and insights, on DuckDB and then on Postgres, with
   stage times, rows/s per source and peak RSS (this process and its children: dbt);
2. the sandbox's clock moves forward until about 1% of the objects changed, and the same pipeline
   reruns incrementally on both warehouses (the store is copied first, so the cached one stays as
   generated);
3. baselines over the orders bulk JSONL of the biggest shop: the dict path, the fast path, and
   DuckDB's read_json as the bound, with their ratios to the real sync;
4. P5: the anomaly scan over synthetic series (`insights.synthetic.benchmark`);
5. the detection benchmark: the detector scored on labeled series (`bench.detection`);
6. many tenants: 200 generated tiny tenants refreshed through the Dagster definitions (`bench.tenants`).
It writes `bench-<time>.json` and `.md` under ABOS_HOME/bench/ after each phase, marked incomplete
(`"complete": false`) until the end, so a run stopped or failing midway keeps what it measured; it
returns the report. `run_phase_bench` runs one phase alone: the tenants, or the growth curve over scales
(`bench.growth`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import psycopg2
from psycopg2 import sql

from pipelines.bench import baselines, report
from pipelines.bench.detection import detection_phase
from pipelines.bench.measure import PeakRss, load_average, machine, mib, stage
from pipelines.bench.served import Served, served, working_copy
from pipelines.bench.stages import MAIN_TABLE, run_pipeline
from pipelines.bench.tenants import tenants_phase
from pipelines.ingest.stripe.client import REQUESTS_PER_SECOND
from pipelines.sandbox.core.connection import sandbox_env
from pipelines.settings import PROJECT_ROOT, Settings, load_settings
from pipelines.workspaces import Workspaces, load_workspaces

CHANGE_SHARE = 0.01  # "change 1% of objects", counted in the objects throughput is measured in
CHANGED_KINDS = ("order", "invoice")
BASELINE_WORKSPACE = "demo-us-store"  # the biggest shop


@dataclass
class BenchOptions:
    store: Path  # the generated sandbox store (created by the first run when missing)
    size: str  # simulator size, e.g. "large" or "large@0.05"
    seed: int
    as_of: date
    history_days: int
    postgres_url: str | None  # a database the benchmark may drop and recreate; None skips Postgres
    baseline_orders: int | None  # cap on the orders the baselines read (None: the whole file)
    p5_workspaces: int = 1000
    p5_metrics: int = 20
    p5_days: int = 730
    tenants: int = 0  # generated tenants refreshed through Dagster (0: no tenants phase)
    stripe_pace: str = "live"  # the Stripe client's pace: a live key's (80/s) or a test key's (20/s)
    keep_work: bool = False  # leave ABOS_HOME/bench/work (the warehouses the runs built) for inspection


def run_bench(options: BenchOptions, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark; returns the report written under ABOS_HOME/bench/."""
    home = load_settings().home
    work = home / "bench" / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started_at = datetime.now(timezone.utc)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    saved = _Report(home / "bench" / f"bench-{stamp}", report.targets, report.markdown)
    result: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "params": {"size": options.size, "seed": options.seed, "as_of": options.as_of.isoformat(),
                   "stripe_pace": options.stripe_pace,
                   "baseline_orders_cap": options.baseline_orders},
        "machine": machine(),
        "load_average": {"start": load_average()},
        "runs": {},
        "files": saved.files,
    }
    progress(saved.announcement)
    warehouses = {"duckdb": f"duckdb:///{work / 'duckdb' / 'warehouse.duckdb'}"}
    if options.postgres_url:
        warehouses["postgres"] = options.postgres_url
    with PeakRss() as rss:
        with served(options.store, size=options.size, seed=options.seed, as_of=options.as_of) as sandbox:
            rss.exclude.add(sandbox.pid)
            for kind, url in warehouses.items():
                if kind == "postgres":
                    _recreate_database(url)
                settings, workspaces = _point_at(sandbox, kind, url, work, options.stripe_pace)
                result["runs"][kind] = {"full": run_pipeline(settings, workspaces, rss, progress,
                                                             f"full run on {kind}")}
                saved.save(result, rss)
            progress("downloading the orders bulk file for the baselines")
            settings, workspaces = _point_at(sandbox, "duckdb", warehouses["duckdb"], work, options.stripe_pace)
            since = _baseline_since(options, result["runs"]["duckdb"]["full"]["sources"]["shopify"]["objects"])
            bulk = baselines.download_orders(workspaces.get(BASELINE_WORKSPACE), settings, work / "orders.jsonl",
                                             since)
        changed_store = work / "sandbox-changed.sqlite"
        progress(f"copying the sandbox store to {changed_store}")
        working_copy(options.store, changed_store, size=options.size, seed=options.seed, as_of=options.as_of)
        with served(changed_store, size=options.size, seed=options.seed, as_of=options.as_of) as sandbox:
            rss.exclude.add(sandbox.pid)
            progress(f"advancing the sandbox until {CHANGE_SHARE:.0%} of the orders and invoices changed")
            result["change"] = _change(sandbox, options.history_days, result["runs"]["duckdb"]["full"])
            for kind, url in warehouses.items():
                settings, workspaces = _point_at(sandbox, kind, url, work, options.stripe_pace)
                result["runs"][kind]["incremental"] = run_pipeline(settings, workspaces, rss, progress,
                                                                   f"incremental run on {kind}")
                saved.save(result, rss)
        changed_store.unlink()
        with stage(rss, progress, "baselines over the same JSONL"):
            result["baselines"] = _baselines(bulk, options.baseline_orders, work, result["runs"]["duckdb"]["full"])
        saved.save(result, rss)
        from pipelines.insights.synthetic import benchmark

        with stage(rss, progress, f"P5: anomaly scan of {options.p5_workspaces} workspaces × {options.p5_metrics} "
                                  f"metrics × {options.p5_days} days"):
            result["p5"] = benchmark(options.p5_workspaces, options.p5_metrics, options.p5_days)
        saved.save(result, rss)
        result["detection"] = detection_phase(progress)
        saved.save(result, rss)
        if options.tenants:
            result["tenants"] = tenants_phase(options.tenants, seed=options.seed, as_of=options.as_of,
                                              cache=options.store.parent, work=work, rss=rss, progress=progress,
                                              rows_per_s=_rows_per_s(result["runs"]["duckdb"]["full"]))
        saved.save(result, rss, complete=True)
    _clean_up(work, options.keep_work)
    return result


def run_phase_bench(name: str, phase: Callable[[Path, PeakRss, Callable[[dict[str, Any]], None]], dict[str, Any]],
                    targets: Callable[[dict[str, Any]], dict[str, Any]], keep_work: bool = False,
                    progress: Callable[[str], None] = print) -> dict[str, Any]:
    """One phase alone (`abos bench --tenants-only`, `--growth`): `phase(work, rss, save)`'s figures, its
    `targets`, machine and load, written to `<name>-<time>.json` and `.md` under ABOS_HOME/bench/; `phase`
    may `save` its figures so far, which writes them marked incomplete."""
    home = load_settings().home / "bench"
    work = home / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started_at = datetime.now(timezone.utc)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    saved = _Report(home / f"{name}-{stamp}", lambda found: targets(found[name]),
                    lambda found: report.phase_markdown(name, found))
    result: dict[str, Any] = {"started_at": started_at.isoformat(timespec="seconds"), "machine": machine(),
                              "load_average": {"start": load_average()}, "files": saved.files}
    progress(saved.announcement)
    with PeakRss() as rss:
        def save(figures: dict[str, Any]) -> None:
            result[name] = figures
            saved.save(result, rss)

        result[name] = phase(work, rss, save)
        saved.save(result, rss, complete=True)
    _clean_up(work, keep_work)
    return result


class _Report:
    """A benchmark's report files, `<stem>.json` and `<stem>.md`, written again after each phase."""

    def __init__(self, stem: Path, targets: Callable[[dict[str, Any]], dict[str, Any]],
                 markdown: Callable[[dict[str, Any]], str]) -> None:
        self.targets, self.markdown = targets, markdown
        self.files = {"json": f"{stem}.json", "markdown": f"{stem}.md"}
        self.announcement = f"report: {self.files['markdown']} and .json, written after each phase, complete at the end"

    def save(self, result: dict[str, Any], rss: PeakRss, complete: bool = False) -> None:
        """Write `result` as it stands, its targets judged on what it holds, marked incomplete until the
        last phase; each file is replaced whole (a temporary file renamed), so a run stopped at any
        moment leaves the figures of the phases it finished."""
        result.update(complete=complete, peak_rss_mib=mib(rss.peak))
        result["load_average"]["end"] = load_average()
        result["targets"] = self.targets(result)
        for kind, text in (("json", json.dumps(result, indent=2) + "\n"), ("markdown", self.markdown(result))):
            path = Path(self.files[kind])
            temporary = path.with_name(path.name + ".partial")
            temporary.write_text(text)
            temporary.replace(path)


def _clean_up(work: Path, keep: bool) -> None:
    """Remove the work directory (warehouses, copied stores: tens of GB at the large sandbox), or say
    where it was left (`--keep-work`; the next benchmark run removes it)."""
    if keep:
        print(f"[abos] bench: the work directory is kept: {work} (the next benchmark run removes it)")
        return
    shutil.rmtree(work, ignore_errors=True)


def _rows_per_s(run: dict[str, Any]) -> float:
    """Rows per second of the ingestion of a run (all sources): what the data alone costs."""
    return round(sum(s["rows"] for s in run["sources"].values()) / max(run["ingest_seconds"], 1e-9), 1)


def _baseline_since(options: BenchOptions, shop_orders: int) -> str | None:
    """Where the baselines' bulk query starts: recent enough that the export holds about the capped
    number of orders (orders grow over time, so the recent days hold at least that many)."""
    if options.baseline_orders is None or options.baseline_orders >= shop_orders:
        return None
    days = options.history_days * options.baseline_orders / shop_orders
    start = datetime.combine(options.as_of, datetime.min.time(), timezone.utc) - timedelta(days=days)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def _point_at(sandbox: Served, kind: str, url: str, work: Path,
              stripe_pace: str = "live") -> tuple[Settings, Workspaces]:
    """Settings and tenants for one warehouse, with the demo workspaces pointed at the sandbox.

    The sandbox's keys are test keys, which the client paces at 20 requests/s; the sandbox allows a live
    account's rate, and with `stripe_pace` "live" the Stripe client is paced as for a live key (80/s), as
    the issue's wall-time target states. "test" keeps the test key's pace."""
    # The demo tenants read their credentials from the environment (workspaces.yaml names the variables);
    # the warehouse and the data directory are this run's settings only.
    os.environ.update(sandbox_env(sandbox.info))
    settings = load_settings({**os.environ, "ABOS_HOME": str(work / kind), "ABOS_WAREHOUSE_URL": url,
                              "ABOS_WORKSPACES": str(PROJECT_ROOT / "workspaces.yaml")})
    workspaces = load_workspaces(settings.workspaces_file, require_secrets=True)
    for workspace in workspaces:
        if "stripe" in workspace.connectors:
            workspace.connectors["stripe"].options["requests_per_second"] = REQUESTS_PER_SECOND[stripe_pace]
    return settings, workspaces


def _recreate_database(url: str) -> None:
    """Drop and create the benchmark's Postgres database, so every run starts empty."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"--postgres must name a database the benchmark may drop and recreate, not {name!r}")
    admin = psycopg2.connect(parts._replace(path="/postgres").geturl())
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        cursor.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    admin.close()


def _change(sandbox: Served, history_days: int, full: dict[str, Any], share: float = CHANGE_SHARE) -> dict[str, Any]:
    """Move the clock in small steps until `share` (1%) of the orders and invoices the full run synced
    were created or changed (the simulator's own changes: edits, refunds, renewals, churn, new days)."""
    before = sum(source["objects"] for source in full["sources"].values())
    step = history_days * share / 16  # on the large sandbox one step of a 1% change changes about 0.4%
    days, by_workspace = 0.0, {}
    while _counted(by_workspace) < share * before and days < history_days * share * 10:
        for workspace, kinds in sandbox.advance(step)["changed"].items():
            for kind, count in kinds.items():
                by_workspace.setdefault(workspace, {}).setdefault(kind, 0)
                by_workspace[workspace][kind] += count
        days += step
    return {"days": round(days, 3), "by_workspace": by_workspace, "changed_objects": _counted(by_workspace),
            "objects_before": before, "changed_share": round(_counted(by_workspace) / max(before, 1), 4),
            "counted_kinds": list(CHANGED_KINDS)}


def _counted(by_workspace: dict[str, dict[str, int]]) -> int:
    return sum(n for kinds in by_workspace.values() for kind, n in kinds.items() if kind in CHANGED_KINDS)


def _baselines(bulk: Path, cap: int | None, work: Path, full: dict[str, Any]) -> dict[str, Any]:
    input_file = work / "orders-sample.jsonl"
    found: dict[str, Any] = {"input": baselines.sample(bulk, cap, input_file)}
    orders = found["input"]["orders"]
    runs = {
        "dict_path": baselines.dict_path(input_file, BASELINE_WORKSPACE, work),
        "fast_path": baselines.fast_path(input_file, BASELINE_WORKSPACE, work),
        "read_json_bound": baselines.read_json_bound(input_file, work),
    }
    for name, run in runs.items():
        seconds = run.get("seconds") or sum(run[s] for s in ("extract", "normalize", "load"))
        found[name] = {**{k: round(v, 3) for k, v in run.items()}, "seconds": round(seconds, 3),
                       "orders_per_s": round(orders / max(seconds, 1e-9), 1)}
    sync_rate = full["sources"]["shopify"][f"{MAIN_TABLE['shopify']}_per_s"]
    found["sync_orders_per_s"] = sync_rate
    found["ratios"] = {
        "sync_vs_dict_path": round(sync_rate / found["dict_path"]["orders_per_s"], 2),
        "read_json_bound_vs_sync": round(found["read_json_bound"]["orders_per_s"] / max(sync_rate, 1e-9), 2),
        "fast_path_vs_dict_path": round(found["fast_path"]["orders_per_s"] / found["dict_path"]["orders_per_s"], 2),
        "read_json_bound_vs_fast_path": round(
            found["read_json_bound"]["orders_per_s"] / found["fast_path"]["orders_per_s"], 2),
    }
    return found
