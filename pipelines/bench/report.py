"""The benchmark's targets (issue 7) and its Markdown table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

P1_SECONDS = 300  # full sync + dbt + insights on DuckDB, large sandbox
P1_OWN_SECONDS = 120  # issue 13: the full run's wall time less the API's (pacing, bulk export preparation)
P1_DBT_SECONDS = 60  # issue 13: the full run's dbt build
P1_LIVE_SECONDS = 600  # issue 13: the full run's wall time with Stripe paced as a live key
P2_DBT_SECONDS = 15  # issue 13: dbt after a 1% change
P1_DICT_RATIO = 10  # at least 10x the dict-path baseline
P1_BOUND_RATIO = 5  # within 5x of the read_json bound
P2_SHARE = 0.05  # incremental rerun after 1% changes, as a share of the full run
P3_RATIO = 2  # Postgres time over DuckDB time
MEMORY_GIB = 4
P5_SECONDS = 30
DETECTION_F1 = 0.8  # issue 14: event-level F1 on the detection benchmark
DETECTION_FALSE_PER_SERIES_MONTH = 0.5
TENANT_OVERHEAD_SECONDS = 2  # issue 13: per workspace, beyond the data, refreshing 200 tenants
GROWTH_EXPONENT = 1.1  # time against data size: no faster than linear
GROWTH_SPAN = 10  # the exponent is judged only over at least 10× the rows
P2_SMALL_SHARE = 0.01  # incremental rerun after 0.1% changes, as a share of the full run


def _target(value: float | None, limit: float, at_most: bool = True) -> dict[str, Any]:
    met = None if value is None else (value <= limit if at_most else value >= limit)
    return {"value": value, "target": ("<= " if at_most else ">= ") + str(limit), "met": met}


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """Every target with its measured value; `met` is judged as measured, whatever the scale. A report
    written before the end (`"complete": false`) has the targets of the phases it finished."""
    runs = report["runs"]
    found: dict[str, Any] = {}
    if "duckdb" in runs:
        duck_full = runs["duckdb"]["full"]["total_seconds"]
        found["P1_full_seconds_duckdb"] = _target(duck_full, P1_SECONDS)
        found["P1_own_seconds_duckdb"] = _target(runs["duckdb"]["full"].get("own_seconds"), P1_OWN_SECONDS)
        found["P1_dbt_seconds_duckdb"] = _target(runs["duckdb"]["full"]["stages"]["dbt"], P1_DBT_SECONDS)
        if report["params"].get("stripe_pace") == "live":
            found["P1_full_seconds_live_pace_duckdb"] = _target(duck_full, P1_LIVE_SECONDS)
    if "baselines" in report:
        ratios = report["baselines"]["ratios"]
        found["P1_vs_dict_path"] = _target(ratios["sync_vs_dict_path"], P1_DICT_RATIO, at_most=False)
        found["P1_read_json_bound_over_sync"] = _target(ratios["read_json_bound_vs_sync"], P1_BOUND_RATIO)
    if "incremental" in runs.get("duckdb", {}):
        found["P2_incremental_share_duckdb"] = _target(
            round(runs["duckdb"]["incremental"]["total_seconds"] / duck_full, 4), P2_SHARE)
        found["P2_dbt_seconds_duckdb"] = _target(runs["duckdb"]["incremental"]["stages"]["dbt"], P2_DBT_SECONDS)
    if "postgres" in runs:
        pg_full = runs["postgres"]["full"]["total_seconds"]
        if "incremental" in runs["postgres"]:
            found["P2_incremental_share_postgres"] = _target(
                round(runs["postgres"]["incremental"]["total_seconds"] / pg_full, 4), P2_SHARE)
        found["P3_postgres_over_duckdb"] = _target(round(pg_full / duck_full, 2), P3_RATIO)
    found["memory_peak_gib"] = _target(round(report["peak_rss_mib"] / 1024, 2), MEMORY_GIB)
    if "p5" in report:
        found["P5_scan_seconds"] = p5_target(report["p5"])
    if "detection" in report:
        found.update(detection_targets(report["detection"]))
    if "tenants" in report:
        found.update(tenants_targets(report["tenants"]))
    return found


def tenants_targets(tenants: dict[str, Any]) -> dict[str, Any]:
    """The many-tenants target, on the steady-state refresh (after a day) and the first one."""
    return {f"tenants_overhead_per_workspace_{name}": _target(tenants[name]["per_workspace_overhead_seconds"],
                                                              TENANT_OVERHEAD_SECONDS)
            for name in ("after_a_day", "first") if name in tenants}


def growth_targets(growth: dict[str, Any]) -> dict[str, Any]:
    """The growth curve's targets: the exponent, and the incremental shares of the largest scale."""
    exponents = growth["exponents"]
    found = {"growth_exponent_full": _target(exponents["full_total_vs_rows"], GROWTH_EXPONENT)}
    rows = [point["full"]["rows"] for point in growth["points"]]
    if not rows or max(rows) < GROWTH_SPAN * min(rows):
        found["growth_exponent_full"]["met"] = None  # fixed costs and the machine's load decide a short span

    for change, share in exponents.get("incremental_share_of_full", {}).items():
        limit = P2_SMALL_SHARE if float(change.rstrip("%")) < 0.5 else P2_SHARE
        found[f"incremental_share_after_{change}"] = _target(share, limit)
    if growth["points"]:  # the large sandbox's own targets, judged only at its full size
        largest = growth["points"][-1]
        full, after = largest["full"], largest["incremental"][-1:]
        judged = {"full_own_seconds": _target(full["own_seconds"], P1_OWN_SECONDS),
                  "full_dbt_seconds": _target(full["stages"]["dbt"], P1_DBT_SECONDS),
                  "full_seconds_live_pace": _target(full["total_seconds"], P1_LIVE_SECONDS),
                  "peak_rss_gib": _target(round(max([full["peak_rss_mib"], *(r["peak_rss_mib"] for r in after)])
                                                / 1024, 2), MEMORY_GIB)}
        if after:
            judged["incremental_dbt_seconds"] = _target(after[0]["stages"]["dbt"], P2_DBT_SECONDS)
        for name, target in judged.items():
            if largest["scale"] < 1:
                target["met"] = None
            found[f"largest_scale_{name}"] = target
    return found


INCOMPLETE = ("**Incomplete**: the run had not finished when this was written (still running, stopped or "
              "failed); it holds the phases it had finished.")


def _incomplete(report: dict[str, Any]) -> list[str]:
    """The warning a report written before the end of its run carries (reports before it have no `complete`)."""
    return [INCOMPLETE, ""] if report.get("complete") is False else []


def phase_markdown(name: str, report: dict[str, Any]) -> str:
    """The report of one phase run alone (`abos bench --tenants-only`, `--growth`)."""
    out = [f"# abos bench --{name} ({report['started_at']})", "", *_incomplete(report),
           f"{report['machine']['cpus']} × {report['machine']['cpu_model']}; load average "
           f"{report['load_average']['start']} at start, {report['load_average']['end']} at the end; "
           f"peak RSS {report['peak_rss_mib']} MiB.", "", "| target | measured | goal | met |", "|---|---|---|---|"]
    for target, found in report["targets"].items():
        met = "n/a" if found["met"] is None else ("yes" if found["met"] else "no")
        out.append(f"| {target} | {found['value']} | {found['target']} | {met} |")
    out += _tenants_section(report["tenants"]) if name == "tenants" else _growth_section(report["growth"])
    return "\n".join(out) + "\n"


def _tenants_section(tenants: dict[str, Any]) -> list[str]:
    out = ["", f"## {tenants['tenants']} tenants through Dagster ({tenants['size']})", "",
           f"Loading the Definitions in a fresh process (what the run queue pays per run): "
           f"{tenants['definitions_load']['seconds']} s ({tenants['definitions_load']['cpu_seconds']} s CPU).", "",
           "| refresh | seconds | CPU s | runs | rows | per workspace s | overhead per workspace s (own runs + "
           "shared) | kind: runs × mean s (outside steps), CPU s |", "|---|---|---|---|---|---|---|---|"]
    for name in ("first", "after_a_day"):
        found = tenants[name]
        kinds = "; ".join(f"{kind}: {k['runs']} × {k['mean_run_seconds']} ({k['mean_outside_steps_seconds']}), "
                          f"{k['cpu_seconds']}" for kind, k in found["by_kind"].items())
        out.append(f"| {name} | {found['seconds']} | {found['cpu_seconds']} | {found['runs']} | {found['rows_loaded']} | "
                   f"{found['per_workspace_seconds']} | {found['per_workspace_overhead_seconds']} "
                   f"({found['per_workspace_own_runs_seconds']} + {found['per_workspace_shared_runs_seconds']}) | "
                   f"{kinds} |")
    return out


def _growth_section(growth: dict[str, Any]) -> list[str]:
    warehouse = {"duckdb": "DuckDB", "postgres": "Postgres"}[growth.get("warehouse", "duckdb")]
    out = ["", f"## Growth curve ({warehouse})", "",
           "| scale | run | change | rows | total s | own s | CPU s | sandbox CPU s | extract | normalize | load | dbt | "
           "insights | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for scale, label, change, run in _growth_runs(growth):
        s = run["stages"]
        out.append(f"| {scale} | {label} | {change} | {run['rows']} | {run['total_seconds']} | "
                   f"{run.get('own_seconds')} | {run['cpu_seconds']} | {run.get('sandbox_cpu_seconds')} | "
                   f"{s['extract']} | {s['normalize']} | {s['load']} | {s['dbt']} | {s['insights']} | "
                   f"{run['peak_rss_mib']} |")
    out += _growth_sources(growth)
    out += ["", ("Slowest dbt nodes of each run (wall seconds, from dbt's log; in brackets the part spent "
                 "compiling, which can be time not its own):"), ""]
    for scale, label, change, run in _growth_runs(growth):
        nodes = ", ".join(_node_seconds(name, seconds) for name, seconds in (run.get("dbt_slowest") or {}).items())
        out.append(f"- {scale} {label}{' ' + change if change else ''}: {nodes or 'not recorded'}")
    out += ["", "| exponent | value |", "|---|---|"]
    out += [f"| {name} | {value} |" for name, value in growth["exponents"].items()]
    return out


def _growth_runs(growth: dict[str, Any]) -> Iterator[tuple[Any, str, str, dict[str, Any]]]:
    """Every run of the growth curve in report order: its scale, "full" or "incremental", the changed
    share ("" for a full run) and its figures."""
    for point in growth["points"]:
        for label, run in [("full", point["full"]), *(("incremental", r) for r in point["incremental"])]:
            yield point["scale"], label, f"{run['changed_share']:.2%}" if "changed_share" in run else "", run


def _growth_sources(growth: dict[str, Any]) -> list[str]:
    """What each source's sync did in each run, in all and by workspace: where a run's API waits (pacing,
    bulk export preparation) and its sync modes show. CPU is the whole ingestion's (the syncs run at once
    in one process, the sandbox serving them on the same cores), on the source's "all" row."""
    out = ["", ("Syncs of each run (API waits in seconds of wall time; ingest CPU s: the whole ingestion's, "
                "ours / the sandbox's):"), "",
           ("| scale | run | change | source | workspace | mode | seconds | rows | requests | pacing wait s | "
            "bulk export wait s | ingest CPU s |"), "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for scale, label, change, run in _growth_runs(growth):
        ingest = (run.get("stage_cpu_seconds") or {}).get("ingest")
        cpu = f"{ingest['ours']} / {ingest['sandbox']}" if ingest else ""
        for source, found in (run.get("sources") or {}).items():
            syncs = [("all", ", ".join(found.get("modes") or []), found, cpu),
                     *((name, one["mode"], one, "") for name, one in (found.get("workspaces") or {}).items())]
            for workspace, mode, one, used in syncs:
                out.append(f"| {scale} | {label} | {change} | {source} | {workspace} | {mode} | "
                           f"{one['seconds']} | {one['rows']} | {one['requests']} | "
                           f"{one['throttle_wait_seconds']} | {one.get('bulk_wait_seconds')} | {used} |")
    return out


def _node_seconds(name: str, seconds: float | dict[str, float]) -> str:
    """A node of a run's slowest: its seconds and, from 0.05 s, its compile phase's (older reports: seconds alone)."""
    if not isinstance(seconds, dict):
        return f"`{name}` {seconds}"
    compiling = f" ({seconds['compiling']} compiling)" if seconds["compiling"] >= 0.05 else ""
    return f"`{name}` {seconds['seconds']}{compiling}"


def _cpu_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    """CPU seconds per stage, ours and the sandbox's, with the definitions a reader needs."""
    definitions = ("*own* (above) is the run's wall time less the time it waited for the APIs: the longest sync's "
                   "pacing, retry back-off and bulk-export waits, each counted once as wall time. The sandbox "
                   "serving the fake APIs shares this machine's cores, so its work slows ours without counting "
                   "as a wait: *ours* is the CPU of the benchmark's process tree (dbt included, the sandbox "
                   "excluded), *sandbox* that of the sandbox's process; per request, the ingestion's.")
    header = ("| warehouse | run | ingest ours | ingest sandbox | dbt ours | insights ours | API requests | "
              "ingest ours ms/request | sandbox ms/request |")
    out = ["", "## CPU seconds per stage: ours and the API stand-in's", "", definitions, "", header,
           "|---|---|---|---|---|---|---|---|---|"]
    for kind, named in runs.items():
        for name, run in named.items():
            cpu = run.get("stage_cpu_seconds")
            if not cpu:
                continue
            requests = max(run.get("api_requests") or 0, 1)
            out.append(f"| {kind} | {name} | {cpu['ingest']['ours']} | {cpu['ingest']['sandbox']} | "
                       f"{cpu['dbt']['ours']} | {cpu['insights']['ours']} | {run.get('api_requests')} | "
                       f"{round(1000 * cpu['ingest']['ours'] / requests, 1)} | "
                       f"{round(1000 * cpu['ingest']['sandbox'] / requests, 1)} |")
    return out


def p5_target(p5: dict[str, Any]) -> dict[str, Any]:
    return _target(p5["scan_s"], P5_SECONDS)


def detection_targets(detection: dict[str, Any]) -> dict[str, Any]:
    """The detection benchmark's targets, on all its series."""
    overall = detection["detector"]["all"]
    return {"detection_event_f1": _target(overall["f1"], DETECTION_F1, at_most=False),
            "detection_false_alerts_per_series_month": _target(overall["false_alerts_per_series_month"],
                                                               DETECTION_FALSE_PER_SERIES_MONTH)}


def detection_markdown(report: dict[str, Any]) -> str:
    """`abos bench --detection`'s report: its targets, then the detection and P5 sections."""
    out = [f"# abos bench --detection ({report['started_at']})", "", "| target | measured | goal | met |",
           "|---|---|---|---|"]
    for name, found in report["targets"].items():
        out.append(f"| {name} | {found['value']} | {found['target']} | {'yes' if found['met'] else 'no'} |")
    return "\n".join(out + _detection_section(report["detection"]) + _p5_section(report["p5"])) + "\n"


def _detection_section(detection: dict[str, Any]) -> list[str]:
    out = ["", f"## Detection benchmark ({detection['series']} series, seed {detection['seed']}, sensitivity "
           f"{detection['sensitivity']}; scan {detection['scan_s']} s)", "",
           "| method | series family | events | detected | false alerts | precision | recall | F1 | "
           "false alerts per series-month |", "|---|---|---|---|---|---|---|---|---|"]
    for method in ("detector", "rolling_z4"):
        for family, found in detection[method].items():
            out.append(f"| {method} | {family} | {found['events']} | {found['detected']} | {found['false_alerts']} | "
                       f"{found['precision']} | {found['recall']} | {found['f1']} | "
                       f"{found['false_alerts_per_series_month']} |")
    return out


def _p5_section(p5: dict[str, Any]) -> list[str]:
    return ["", "## P5: anomaly scan", "",
            f"{p5['series']} series × {p5['points'] // max(p5['series'], 1)} days: scan {p5['scan_s']} s "
            f"(CPU {p5['scan_cpu_s']} s), {p5['points_per_s']} points/s, recall {p5['recall']}."]


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables, for docs/performance.md and people."""
    params, machine = report["params"], report["machine"]
    out = [
        f"# abos bench: {params['size']} sandbox (seed {params['seed']}, as of {params['as_of']})",
        "",
        *_incomplete(report),
        f"{report['started_at']}, {machine['cpus']} × {machine['cpu_model']}, {machine['memory_gib']} GiB; "
        f"load average {report['load_average']['start']} at start, {report['load_average']['end']} at the end.",
        "",
        "## Targets",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for name, found in report["targets"].items():
        met = "n/a" if found["met"] is None else ("yes" if found["met"] else "no")
        out.append(f"| {name} | {found['value']} | {found['target']} | {met} |")
    out += ["", "## Pipeline runs (seconds)", "",
            "| warehouse | run | extract | normalize | load | dbt | insights | total | own | CPU | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, runs in report["runs"].items():
        for name, run in runs.items():
            s = run["stages"]
            out.append(f"| {kind} | {name} | {s['extract']} | {s['normalize']} | {s['load']} | {s['dbt']} | "
                       f"{s['insights']} | {run['total_seconds']} | {run.get('own_seconds')} | "
                       f"{run.get('cpu_seconds')} | {run['peak_rss_mib']} |")
    out += _cpu_section(report["runs"])
    out += ["", "## Sources", "", "| warehouse | run | source | seconds | rows | rows/s | objects | objects/s | "
            "API requests | pacing wait s | bulk export wait s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind, runs in report["runs"].items():
        for name, run in runs.items():
            for source, found in run["sources"].items():
                per_s = next(v for k, v in found.items() if k.endswith("_per_s") and k != "rows_per_s")
                out.append(f"| {kind} | {name} | {source} | {found['seconds']} | {found['rows']} | "
                           f"{found['rows_per_s']} | {found['objects']} | {per_s} | {found['requests']} | "
                           f"{found['throttle_wait_seconds']} | {found.get('bulk_wait_seconds')} |")
    if "baselines" in report:
        out += _baselines_section(report["baselines"])
    if "change" in report:
        change = report["change"]
        out += ["", "## Incremental", "",
                f"Clock advanced {change['days']} days: {change['changed_objects']} orders and invoices created or "
                f"changed, {change['changed_share']:.2%} of the {change['objects_before']} the full run synced "
                f"(all changes by workspace and kind: {change['by_workspace']})."]
    if "p5" in report:
        out += _p5_section(report["p5"])
    if "detection" in report:
        out += _detection_section(report["detection"])
    if "tenants" in report:
        out += _tenants_section(report["tenants"])
    return "\n".join(out) + "\n"


def _baselines_section(base: dict[str, Any]) -> list[str]:
    out = ["", f"## Baselines over the same JSONL ({base['input']['orders']} orders, {base['input']['lines']} lines, "
            f"{round(base['input']['bytes'] / 2**20, 1)} MiB)", "",
            "| path | seconds | rows | orders/s |", "|---|---|---|---|"]
    for name in ("dict_path", "fast_path", "read_json_bound"):
        found = base[name]
        out.append(f"| {name} | {found['seconds']} | {found['rows']} | {found['orders_per_s']} |")
    out += ["", "| ratio | value |", "|---|---|"]
    out += [f"| {name} | {value} |" for name, value in base["ratios"].items()]
    return out
