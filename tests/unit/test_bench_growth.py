"""The growth curve's fitted exponent (pipelines/bench/growth.py), on hand-worked points."""

import json
from pathlib import Path

import pytest

from pipelines.bench import report
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


@pytest.mark.parametrize("keep", [False, True])
def test_a_phase_removes_its_work_directory_unless_asked_to_keep_it(tmp_path, monkeypatch, keep):
    """`abos bench --keep-work` leaves the warehouses a run built (ABOS_HOME/bench/work) for profiling;
    by default they are removed (tens of GB at the large sandbox)."""
    from pipelines.bench import run_phase_bench

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))

    def phase(work, rss):
        (work / "warehouse.duckdb").write_text("built")
        return {"points": [], "exponents": {}}

    result = run_phase_bench("growth", phase, lambda figures: {}, keep_work=keep)
    assert (tmp_path / "bench" / "work" / "warehouse.duckdb").exists() is keep
    assert all(Path(path).exists() for path in result["files"].values())


def _pipeline_run(sources, share=None):
    """A run as `stages.run_pipeline` returns it (the figures `_brief` reads), with `sources` as recorded."""
    stages = dict.fromkeys(("extract", "normalize", "load", "dbt", "insights"), 1.0)
    return {"sources": sources, "total_seconds": 40.0, "own_seconds": 20.0, "cpu_seconds": 30.0,
            "sandbox_cpu_seconds": 9.0, "stage_cpu_seconds": {"ingest": {"ours": 12.5, "sandbox": 8.25}},
            "api_requests": sum(s["requests"] for s in sources.values()), "dbt_slowest": {},
            "ingest_seconds": 25.0, "ingest_cpu_seconds": 12.5, "stages": stages, "peak_rss_mib": 900}


def test_the_growth_report_keeps_what_each_sources_sync_did():
    """The per-source figures of every run (rows, requests, API waits, modes) reach the growth JSON and
    its Markdown: they showed a shop's 14.5 s of pacing after a small change."""
    from pipelines.bench.growth import _brief

    def source(rows, objects, requests, pacing, bulk, modes):
        return {"seconds": 21.0, "rows": rows, "objects": objects, "requests": requests,
                "throttle_wait_seconds": pacing, "bulk_wait_seconds": bulk, "modes": modes,
                "rows_per_s": round(rows / 21.0, 1), "orders_per_s": round(objects / 21.0, 1)}

    full = {"shopify": source(5_000, 1_200, 40, 0.0, 6.5, ["full"]),
            "stripe": source(3_000, 800, 310, 3.9, 0.0, ["full"])}
    changed = {"shopify": source(60, 12, 9, 14.5, 0.0, ["incremental"]),
               "stripe": source(30, 8, 25, 0.31, 0.0, ["incremental"])}
    point = {"scale": 0.1, "size": "large@0.1", "full": _pipeline_run(full),
             "incremental": [{"change": {"changed_share": 0.0012, "changed_objects": 2},
                              "run": _pipeline_run(changed)}]}
    brief = _brief(point)
    assert brief["full"]["rows"] == 8_000
    assert brief["full"]["sources"] == full
    assert brief["incremental"][0]["sources"] == changed
    assert json.loads(json.dumps(brief))["incremental"][0]["sources"]["shopify"]["throttle_wait_seconds"] == 14.5

    lines = report._growth_section({"points": [brief], "exponents": {}})
    rows = [line for line in lines if line.startswith("| 0.1 |") and ("shopify" in line or "stripe" in line)]
    assert rows == [
        "| 0.1 | full |  | shopify | 21.0 | 5000 | 1200 | 40 | 0.0 | 6.5 | full | 12.5 / 8.25 |",
        "| 0.1 | full |  | stripe | 21.0 | 3000 | 800 | 310 | 3.9 | 0.0 | full | 12.5 / 8.25 |",
        "| 0.1 | incremental | 0.12% | shopify | 21.0 | 60 | 12 | 9 | 14.5 | 0.0 | incremental | 12.5 / 8.25 |",
        "| 0.1 | incremental | 0.12% | stripe | 21.0 | 30 | 8 | 25 | 0.31 | 0.0 | incremental | 12.5 / 8.25 |"]
