"""`abos bench` stopped midway: the operator was told where it stood, and the report keeps what it measured.

A benchmark at scale 1 runs for most of an hour. Each run of the pipeline says when it and each of its
stages start and end (wall and CPU seconds), and the report is written after every phase, marked
incomplete until the end. Both are checked on runs made to fail from outside after their first phase:
the main benchmark given a Postgres server that does not answer, the growth curve a second scale whose
cached sandbox store cannot be opened.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.bench import report

# Sandbox generation and one or three pipeline runs each: minutes, so `make test-slow` runs them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/abos_bench"  # nothing listens on port 1
DONE = re.compile(r"^(.*): done in (\d+\.\d) s, (\d+\.\d) CPU s$")


def _bench(home: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {**os.environ, "ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("ABOS_WAREHOUSE_URL", None)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", *args], env=env, capture_output=True,
                          check=False, text=True, timeout=2300)
    return done, [line.removeprefix("[abos] ") for line in done.stderr.splitlines() if line.startswith("[abos] ")]


def _in_order(lines: list[str], expected: list[str]) -> None:
    """Each of `expected` starts a line of `lines`, in this order (other lines may come between)."""
    position = 0
    for wanted in expected:
        found = next((i for i in range(position, len(lines)) if lines[i].startswith(wanted)), None)
        assert found is not None, f"no progress line {wanted!r} after line {position} of:\n" + "\n".join(lines)
        position = found + 1


def _done(lines: list[str], name: str) -> tuple[float, float]:
    """The wall and CPU seconds of `name`'s "done" line."""
    found = [(float(m[2]), float(m[3])) for m in map(DONE.match, lines) if m and m[1] == name]
    assert len(found) == 1, (name, lines)
    return found[0]


def _report(home: Path, kind: str) -> tuple[dict, str]:
    reports = sorted((home / "bench").glob(f"{kind}-*.json"))
    assert len(reports) == 1, reports
    assert not list((home / "bench").glob("*.partial")), "a report left half written"
    return json.loads(reports[0].read_text()), reports[0].with_suffix(".md").read_text()


def test_a_bench_failing_at_postgres_keeps_the_duckdb_run(tmp_path):
    home = tmp_path / "abos"
    done, lines = _bench(home, "--scale", "0.002", "--postgres", UNREACHABLE_PG, "--baseline-orders", "0",
                         "--p5-workspaces", "10", "--tenants", "0")
    assert done.returncode != 0 and "port 1 failed" in done.stderr, done.stderr[-3000:]
    _in_order(lines, ["report: ", "full run on duckdb", "duckdb: ingest", "duckdb: synced shopify for demo-us-store: ",
                      "duckdb: ingest: done in ", "duckdb: dbt build", "duckdb: dbt build: done in ",
                      "duckdb: insights", "duckdb: insights: done in ", "full run on duckdb: done in "])
    assert not any(line.startswith("full run on postgres") for line in lines)

    found, markdown = _report(home, "bench")
    assert found["complete"] is False and report.INCOMPLETE in markdown
    assert list(found["runs"]) == ["duckdb"] and list(found["runs"]["duckdb"]) == ["full"]
    run = found["runs"]["duckdb"]["full"]
    assert run["sources"]["shopify"]["rows"] > 0 and run["sources"]["stripe"]["rows"] > 0
    # the progress lines give the figures the report keeps
    assert _done(lines, "duckdb: dbt build") == (round(run["stages"]["dbt"], 1),
                                                 round(run["stage_cpu_seconds"]["dbt"]["ours"], 1))
    assert _done(lines, "duckdb: insights")[0] == round(run["stages"]["insights"], 1)
    assert _done(lines, "duckdb: ingest") == (round(run["ingest_seconds"], 1), round(run["ingest_cpu_seconds"], 1))
    assert _done(lines, "full run on duckdb") == (round(run["total_seconds"], 1), round(run["cpu_seconds"], 1))
    # the targets of the phase it finished, judged and in the Markdown
    assert found["targets"]["P1_full_seconds_duckdb"]["value"] == run["total_seconds"]
    assert "P3_postgres_over_duckdb" not in found["targets"]
    assert "| P1_full_seconds_duckdb |" in markdown and "| duckdb | full |" in markdown


def test_a_growth_curve_failing_at_its_second_scale_keeps_the_first(tmp_path):
    home = tmp_path / "abos"
    # the second scale's cached sandbox store is a directory: its sandbox cannot start
    (home / "sandbox" / "large@0.001-seed42-2026-11-25.sqlite").mkdir(parents=True)
    done, lines = _bench(home, "--growth", "0.0005,0.001")
    assert done.returncode != 0 and "the sandbox did not start" in done.stderr, done.stderr[-3000:]
    _in_order(lines, ["report: ", "growth 0.0005 / duckdb: full run", "duckdb: dbt build: done in ",
                      "growth 0.0005 / duckdb: full run: done in ", "growth 0.0005 / duckdb: incremental run after ",
                      "duckdb: ingest: done in ", "growth 0.0005 / duckdb: incremental run after "])
    assert not any(line.startswith("growth 0.001 ") for line in lines)

    found, markdown = _report(home, "growth")
    assert found["complete"] is False and report.INCOMPLETE in markdown
    (point,) = found["growth"]["points"]
    assert point["scale"] == 0.0005 and point["full"]["rows"] > 0 and len(point["incremental"]) == 2
    assert _done(lines, "growth 0.0005 / duckdb: full run") == (round(point["full"]["total_seconds"], 1),
                                                                 round(point["full"]["cpu_seconds"], 1))
    assert "largest_scale_full_own_seconds" in found["targets"] and "| 0.0005 | full |" in markdown
