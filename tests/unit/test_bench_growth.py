"""The growth curve's fitted exponent (pipelines/bench/growth.py), on hand-worked points."""

import json
from pathlib import Path

import pytest

from pipelines.bench import report, stages
from pipelines.bench.growth import exponent


def test_linear_growth_has_exponent_one():
    assert exponent([(1_000, 2.0), (10_000, 20.0), (100_000, 200.0)]) == 1.0


def test_square_root_growth_has_exponent_one_half():
    # 100× the rows, 10× the time: log(10) / log(100) = 0.5
    assert exponent([(1_000, 3.0), (100_000, 30.0)]) == 0.5


def test_least_squares_through_three_points():
    # log10 points (0, 0), (1, 1), (2, 3): slope = Σ(dx·dy) / Σdx² = (1·(4/3) + 1·(5/3)) / 2 = 1.5
    assert exponent([(1, 1), (10, 10), (100, 1000)]) == pytest.approx(1.5)


def test_one_size_has_no_exponent():
    assert exponent([(1_000, 2.0)]) is None
    assert exponent([(1_000, 2.0), (1_000, 3.0)]) is None


def _run(rows, seconds, own, dbt, rss_mib):
    return {"rows": rows, "total_seconds": seconds, "own_seconds": own, "stages": {"dbt": dbt},
            "peak_rss_mib": rss_mib}


def _growth(rows_small, rows_large, largest_scale=0.1):
    points = [{"scale": largest_scale / 10, "full": _run(rows_small, 10, 9, 5, 500), "incremental": []},
              {"scale": largest_scale, "full": _run(rows_large, 500, 110, 61, 3000),
               "incremental": [_run(10, 20, 19, 14, 4200)]}]
    return {"points": points, "exponents": {"full_total_vs_rows": 0.9}}


def test_the_exponent_is_judged_over_ten_times_the_rows_only():
    assert report.growth_targets(_growth(1_000, 5_000))["growth_exponent_full"]["met"] is None
    assert report.growth_targets(_growth(1_000, 10_000))["growth_exponent_full"]["met"] is True


def test_the_large_sandboxs_targets_are_judged_at_its_full_size_only():
    found = report.growth_targets(_growth(1_000, 10_000, largest_scale=1))
    # own 110 <= 120, dbt 61 > 60, wall 500 <= 600, the incremental run's 4,200 MiB > 4 GiB, its dbt 14 <= 15
    assert {name: target["met"] for name, target in found.items() if name.startswith("largest_scale_")} == {
        "largest_scale_full_own_seconds": True, "largest_scale_full_dbt_seconds": False,
        "largest_scale_full_seconds_live_pace": True, "largest_scale_peak_rss_gib": False,
        "largest_scale_incremental_dbt_seconds": True}
    assert found["largest_scale_peak_rss_gib"]["value"] == 4.1
    scaled = report.growth_targets(_growth(1_000, 10_000, largest_scale=0.1))
    assert all(target["met"] is None for name, target in scaled.items() if name.startswith("largest_scale_"))


def test_the_report_names_each_runs_slowest_dbt_nodes():
    def run(**extra):
        stages = dict.fromkeys(("extract", "normalize", "load", "dbt", "insights"), 1.0)
        return {"rows": 10, "total_seconds": 5, "own_seconds": 5, "cpu_seconds": 5, "stages": stages,
                "peak_rss_mib": 100, **extra}

    growth = {"points": [{"scale": 1, "full": run(dbt_slowest={"ecommerce_customer_segments": 50.4, "orders": 8.2}),
                          "incremental": [run(changed_share=0.0108)]}], "exponents": {}}
    lines = [line for line in report._growth_section(growth) if line.startswith("- ")]
    assert lines == ["- 1 full: `ecommerce_customer_segments` 50.4, `orders` 8.2",
                     "- 1 incremental 1.08%: not recorded"]


def test_the_slowest_dbt_nodes_show_the_time_they_spent_compiling():
    """dbt's node time includes a node's compile phase, which can take seconds not its own: at
    `large@0.01` `subscriptions` took 2.61 s, 2.34 of them compiling (the timings below are that
    run's). The report gives each node's seconds and, from 0.05 s, its compile phase's, read from
    dbt's debug log (the build writes no run_results.json)."""
    def node(name, started, compiling, executing, finished):
        return "\n".join(f"\x1b[0m09:06:{at} [debug] [Thread-1 (]: {phase} node model.abos.{name}" for at, phase in (
            (started, "Began running"), (compiling, "Began compiling"), (executing, "Began executing"),
            (finished, "Finished running")))

    log = "\n".join([
        "\x1b[0m09:06:30.000000 [info ] [MainThread]: Running with dbt=1.11.16",
        node("int_customer_mrr_changes", "37.390000", "37.392996", "37.409876", "37.543500"),
        node("subscriptions", "34.500000", "34.506226", "36.841975", "37.112200"),
        "\x1b[0m09:06:52.841290 [debug] [Thread-2 (]: Began compiling node model.abos.saas_daily_pair_slices",
        "\x1b[0m09:06:52.841000 [debug] [Thread-2 (]: Began running node model.abos.saas_daily_pair_slices",
        "\x1b[0m09:06:53.082001 [debug] [Thread-2 (]: Began executing node model.abos.saas_daily_pair_slices",
        "\x1b[0m09:06:59.611200 [debug] [Thread-2 (]: Finished running node model.abos.saas_daily_pair_slices",
        "\x1b[0m09:06:59.700000 [debug] [Thread-1 (]: Began running node test.abos.skipped",
        "\x1b[0m09:06:59.700000 [debug] [Thread-1 (]: Finished running node test.abos.skipped",
        "\x1b[0m23:59:59.500000 [debug] [Thread-1 (]: Began running node model.abos.at_midnight",
        "\x1b[0m23:59:59.750000 [debug] [Thread-1 (]: Began compiling node model.abos.at_midnight",
        "\x1b[0m00:00:00.250000 [debug] [Thread-1 (]: Began executing node model.abos.at_midnight",
        "\x1b[0m00:00:00.500000 [debug] [Thread-1 (]: Finished running node model.abos.at_midnight",
    ])
    results = stages.node_seconds(log)
    assert stages.slowest_nodes(results, 5)["at_midnight"] == {"seconds": 1.0, "compiling": 0.5}
    results = [r for r in results if r["unique_id"] != "model.abos.at_midnight"]
    slowest = stages.slowest_nodes(results, 3)
    assert slowest == {"saas_daily_pair_slices": {"seconds": 6.77, "compiling": 0.24},
                       "subscriptions": {"seconds": 2.61, "compiling": 2.34},
                       "int_customer_mrr_changes": {"seconds": 0.15, "compiling": 0.02}}
    assert stages.slowest_nodes(results, 4)["skipped"] == {"seconds": 0.0, "compiling": 0.0}
    growth = {"points": [{"scale": 0.01, "full": {"rows": 1, "total_seconds": 1, "cpu_seconds": 1, "peak_rss_mib": 1,
                                                  "stages": dict.fromkeys(("extract", "normalize", "load", "dbt",
                                                                           "insights"), 1.0),
                                                  "dbt_slowest": slowest}, "incremental": []}], "exponents": {}}
    assert [line for line in report._growth_section(growth) if line.startswith("- ")] == [
        ("- 0.01 full: `saas_daily_pair_slices` 6.77 (0.24 compiling), `subscriptions` 2.61 (2.34 compiling), "
         "`int_customer_mrr_changes` 0.15")]


@pytest.mark.parametrize("keep", [False, True])
def test_a_phase_removes_its_work_directory_unless_asked_to_keep_it(tmp_path, monkeypatch, keep):
    """`abos bench --keep-work` leaves the warehouses a run built (ABOS_HOME/bench/work) for profiling;
    by default they are removed (tens of GB at the large sandbox)."""
    from pipelines.bench import run_phase_bench

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))

    def phase(work, rss, save):
        (work / "warehouse.duckdb").write_text("built")
        return {"points": [], "exponents": {}}

    result = run_phase_bench("growth", phase, lambda figures: {}, keep_work=keep)
    assert (tmp_path / "bench" / "work" / "warehouse.duckdb").exists() is keep
    assert all(Path(path).exists() for path in result["files"].values())
    assert result["complete"] is True and report.INCOMPLETE not in Path(result["files"]["markdown"]).read_text()


def test_a_phase_failing_midway_leaves_the_figures_it_saved_marked_incomplete(tmp_path, monkeypatch):
    """A growth curve failing at its second scale after 40 minutes keeps its first scale's figures
    (tests/integration/test_bench_progress.py makes a real one fail)."""
    from pipelines.bench import run_phase_bench

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))
    first = {"points": [], "exponents": {"full_total_vs_rows": None}}

    def phase(work, rss, save):
        save(first)
        raise RuntimeError("the sandbox did not start")

    with pytest.raises(RuntimeError, match="did not start"):
        run_phase_bench("growth", phase, report.growth_targets, progress=lambda line: None)
    (written,) = (tmp_path / "bench").glob("growth-*.json")
    found = json.loads(written.read_text())
    assert found["complete"] is False and found["growth"] == first
    assert found["targets"]["growth_exponent_full"]["value"] is None
    assert report.INCOMPLETE in written.with_suffix(".md").read_text()
    assert not list((tmp_path / "bench").glob("*.partial"))


def _pipeline_run(sources, share=None):
    """A run as `stages.run_pipeline` returns it (the figures `_brief` reads), with `sources` as recorded."""
    stages = dict.fromkeys(("extract", "normalize", "load", "dbt", "insights"), 1.0)
    return {"sources": sources, "total_seconds": 40.0, "own_seconds": 20.0, "cpu_seconds": 30.0,
            "sandbox_cpu_seconds": 9.0, "stage_cpu_seconds": {"ingest": {"ours": 12.5, "sandbox": 8.25}},
            "api_requests": sum(s["requests"] for s in sources.values()), "dbt_slowest": {},
            "ingest_seconds": 25.0, "ingest_cpu_seconds": 12.5, "stages": stages, "peak_rss_mib": 900}


def test_the_growth_report_keeps_what_each_sources_sync_did():
    """The per-source figures of every run (rows, requests, API waits, modes), in all and by workspace,
    reach the growth JSON and its Markdown: they showed a shop's 14.5 s of pacing after a small change."""
    from pipelines.bench.growth import _brief

    def sync(seconds, rows, requests, pacing, bulk, mode):
        return {"seconds": seconds, "rows": rows, "requests": requests, "throttle_wait_seconds": pacing,
                "bulk_wait_seconds": bulk, "mode": mode}

    def source(objects, **workspaces):
        # the totals as `run_pipeline` sums them: its syncs started together, so seconds is the longest
        one = list(workspaces.values())
        rows = sum(w["rows"] for w in one)
        return {"seconds": max(w["seconds"] for w in one), "rows": rows, "objects": objects,
                "requests": sum(w["requests"] for w in one),
                "throttle_wait_seconds": round(sum(w["throttle_wait_seconds"] for w in one), 2),
                "bulk_wait_seconds": round(sum(w["bulk_wait_seconds"] for w in one), 2),
                "modes": sorted({w["mode"] for w in one}), "rows_per_s": 1.0, "orders_per_s": 1.0,
                "workspaces": workspaces}

    full = {"shopify": source(1_200, us=sync(21.0, 4_000, 30, 0.0, 6.5, "full"),
                              br=sync(9.0, 1_000, 10, 0.0, 2.0, "full")),
            "stripe": source(800, saas=sync(18.0, 3_000, 310, 3.9, 0.0, "full"))}
    changed = {"shopify": source(12, us=sync(2.0, 50, 5, 0.0, 0.0, "incremental"),
                                 br=sync(17.6, 10, 4, 14.5, 0.0, "incremental")),
               "stripe": source(8, saas=sync(3.0, 30, 25, 0.31, 0.0, "incremental"))}
    point = {"scale": 0.1, "size": "large@0.1", "full": _pipeline_run(full),
             "incremental": [{"change": {"changed_share": 0.0012, "changed_objects": 2},
                              "run": _pipeline_run(changed)}]}
    brief = json.loads(json.dumps(_brief(point)))  # as the growth JSON holds it
    assert brief["full"]["rows"] == 8_000
    assert brief["full"]["sources"] == full
    assert brief["incremental"][0]["sources"] == changed
    assert brief["incremental"][0]["sources"]["shopify"]["workspaces"]["br"]["throttle_wait_seconds"] == 14.5

    lines = report._growth_section({"points": [brief], "exponents": {}})
    rows = [line for line in lines if line.startswith("| 0.1 |") and ("shopify" in line or "stripe" in line)]
    assert rows == [
        "| 0.1 | full |  | shopify | all | full | 21.0 | 5000 | 40 | 0.0 | 8.5 | 12.5 / 8.25 |",
        "| 0.1 | full |  | shopify | us | full | 21.0 | 4000 | 30 | 0.0 | 6.5 |  |",
        "| 0.1 | full |  | shopify | br | full | 9.0 | 1000 | 10 | 0.0 | 2.0 |  |",
        "| 0.1 | full |  | stripe | all | full | 18.0 | 3000 | 310 | 3.9 | 0.0 | 12.5 / 8.25 |",
        "| 0.1 | full |  | stripe | saas | full | 18.0 | 3000 | 310 | 3.9 | 0.0 |  |",
        "| 0.1 | incremental | 0.12% | shopify | all | incremental | 17.6 | 60 | 9 | 14.5 | 0.0 | 12.5 / 8.25 |",
        "| 0.1 | incremental | 0.12% | shopify | us | incremental | 2.0 | 50 | 5 | 0.0 | 0.0 |  |",
        "| 0.1 | incremental | 0.12% | shopify | br | incremental | 17.6 | 10 | 4 | 14.5 | 0.0 |  |",
        "| 0.1 | incremental | 0.12% | stripe | all | incremental | 3.0 | 30 | 25 | 0.31 | 0.0 | 12.5 / 8.25 |",
        "| 0.1 | incremental | 0.12% | stripe | saas | incremental | 3.0 | 30 | 25 | 0.31 | 0.0 |  |"]


def test_a_run_records_each_workspaces_sync_under_its_source(monkeypatch):
    """`run_pipeline` keeps every workspace's sync (seconds, rows, requests, waits, mode) beside the
    source's totals: the figures the growth report carries (the syncs stubbed, dbt and insights skipped)."""
    from types import SimpleNamespace

    from pipelines.bench import stages
    from pipelines.bench.measure import PeakRss
    from pipelines.ingest.pipeline import SyncStats

    def synced(source, workspace, started, ended, rows, requests, pacing, bulk, mode):
        stats = SyncStats(mode=mode, requests=requests, throttle_wait_seconds=pacing, bulk_wait_seconds=bulk,
                          seconds={"extract": 1.0, "normalize": 0.5, "load": 0.25}, rows=rows)
        return source, workspace, SimpleNamespace(stats=stats), started, ended

    syncs = [synced("shopify", "us", 100.0, 102.0, {"orders": 7, "order_lines": 20}, 5, 0.0, 0.0, "incremental"),
             synced("shopify", "br", 100.5, 118.1, {"orders": 2, "order_lines": 3}, 4, 14.5, 0.0, "incremental"),
             synced("stripe", "saas", 100.0, 103.0, {"invoices": 8, "invoice_lines": 9}, 25, 0.314, 0.0, "incremental")]
    monkeypatch.setattr(stages, "_sync_all", lambda *args: syncs)
    for name in ("sync_fx", "_workspaces_table", "_insights"):
        monkeypatch.setattr(stages, name, lambda *args: None)
    monkeypatch.setattr(stages, "_dbt_build", lambda *args: {})
    settings = SimpleNamespace(warehouse=SimpleNamespace(kind="duckdb"))
    with PeakRss() as rss:
        run = stages.run_pipeline(settings, [], rss, lambda line: None, "full run")
    shopify, stripe = run["sources"]["shopify"], run["sources"]["stripe"]
    assert shopify["workspaces"] == {
        "us": {"seconds": 2.0, "rows": 27, "requests": 5, "throttle_wait_seconds": 0.0, "bulk_wait_seconds": 0.0,
               "mode": "incremental"},
        "br": {"seconds": 17.6, "rows": 5, "requests": 4, "throttle_wait_seconds": 14.5, "bulk_wait_seconds": 0.0,
               "mode": "incremental"}}
    assert (shopify["seconds"], shopify["rows"], shopify["objects"], shopify["requests"]) == (18.1, 32, 9, 9)
    assert stripe["workspaces"]["saas"]["throttle_wait_seconds"] == 0.31 and stripe["objects"] == 8
    assert run["api_requests"] == 34


def test_a_benchmark_that_advances_the_sandbox_leaves_the_cached_store_as_generated(tmp_path):
    """The tenants and freshness benchmarks advance the clock of the store they serve; they serve a
    working copy, so the cached store (reused as advanced once advanced) stays as generated."""
    from datetime import date

    from pipelines.bench.served import served, working_copy
    from pipelines.sandbox.core.store import SandboxStore

    cached, as_of = tmp_path / "cache" / "tiny.sqlite", date(2026, 3, 31)
    params = {"size": "tiny", "seed": 7, "as_of": as_of}
    for run in range(2):
        copy = working_copy(cached, tmp_path / f"run{run}" / "sandbox.sqlite", **params)
        with served(copy, **params) as sandbox:
            start = sandbox.info["admin"]["clock"]
            sandbox.advance(1.0)
        if run == 0:
            first_start = start
        assert start == first_start  # each run starts from the generated clock
    store = SandboxStore(cached)
    assert store.clock == store.get_meta("finished_clock")
    store.close()
