"""`abos demo` end to end on the tiny sandbox, as a newcomer runs it: the real command in a fresh ABOS_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.reliability import run_tags
from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces
from tests.conftest import REPO

# The demo runs once for the module, within its own 30 minutes (subprocess timeout), on a busy CI machine too.
pytestmark = pytest.mark.timeout(1800)

UNSET = ["ABOS_WAREHOUSE_URL", "ABOS_WORKSPACES", "ABOS_DAGSTER_PG_URL", "ABOS_SMTP_HOST", "DEMO_SLACK_BOT_TOKEN",
         "ABOS_OPERATOR_SLACK_CHANNEL", "ABOS_LLM_API_KEY", "OPENAI_API_KEY"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run `abos demo --size tiny` once; its exit code, JSON result, summary lines and ABOS_HOME."""
    home = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    abos = Path(sys.executable).parent / "abos"
    done = subprocess.run([str(abos), "demo", "--size", "tiny", "--as-of", "2026-11-25", "--json"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    summary = done.stderr[done.stderr.rfind("[abos] summary:"):].splitlines()
    # stdout is the JSON result alone (--json); progress lines go to stderr, the details to the log file
    return done, json.loads(done.stdout) if done.returncode == 0 else {}, summary, home


def test_demo_succeeds_and_every_workspace_has_a_report_and_one_email_and_one_slack_payload(demo):
    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    workspaces = result["pipeline"]["summary"]["workspaces"]
    assert set(workspaces) == set(load_workspaces().ids)
    for workspace_id, facts in workspaces.items():
        assert Path(facts["report"]).is_file()
        assert Path(facts["report"]).is_relative_to(home / "reports" / workspace_id)
        outbox = [Path(p) for p in facts["outbox"]]
        assert all(p.is_file() and p.is_relative_to(home / "outbox" / workspace_id) for p in outbox)
        assert sorted(p.suffix for p in outbox) == [".eml", ".json"]
        # The summary people read names the same files.
        assert f"[abos]     report: {facts['report']}" in summary
        assert all(f"[abos]     outbox: {p}" in summary for p in outbox)


def test_demo_summary_counts_what_the_warehouse_holds(demo, monkeypatch):
    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("ABOS_HOME", str(home))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    warehouse = load_settings().warehouse
    found = warehouse.query("select workspace_id, count(*) as n from insights.anomalies group by workspace_id")
    facts = result["pipeline"]["summary"]
    assert {ws: f["anomalies"] for ws, f in facts["workspaces"].items()} == dict(found.itertuples(index=False))
    manifest = json.loads((REPO / "dbt_project" / "target" / "manifest.json").read_text())
    built = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed", "snapshot")]
    assert facts["dbt_models_built"] == len(built)
    for workspace_id, workspace in facts["workspaces"].items():
        tables = warehouse.query(
            "select table_schema, table_name from information_schema.tables where table_schema in ('shopify', 'stripe') "
            "and table_name not like '\\_dlt%%' escape '\\'")
        loaded = sum(int(warehouse.query(f"select count(*) as n from {schema}.{table} where workspace_id = %s",
                                         [workspace_id])["n"][0])
                     for schema, table in tables.itertuples(index=False))
        # A first load: every row ingested is in a raw table once.
        assert workspace["ingested_rows"] == loaded > 0


def test_demo_output_is_quiet_by_default(demo):
    """One line per generated workspace and per run, and the summary: dbt's output, dlt's progress and
    Dagster's events go to the log file the first line names (`abos demo -v` prints them instead)."""
    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert [line for line in lines if not line.startswith("[abos] ")] == []
    runs = result["pipeline"]["runs"]
    started = [line.removeprefix("[abos] running ") for line in lines if line.startswith("[abos] running ")]
    assert started == [f"{run['job']}" + (f" for {', '.join(run['workspaces'])}" if run["workspaces"] else "")
                       + f" ({run['assets']} assets)" for run in runs]
    generated = [line for line in lines if line.startswith("[abos] generating ")]
    assert len(generated) == len(load_workspaces().ids)
    assert len(lines) <= len(runs) + len(generated) + len(summary) + 5  # details, sandbox, finished, result
    log = Path(lines[0].removeprefix("[abos] details: "))
    details = log.read_text()
    assert "START sql" in details and "Extract shopify" in details  # dbt's and dlt's progress
    assert " - INFO - " in details  # Dagster's events
    assert all(f"[abos] running {line}" in details for line in started)  # the progress lines, in context
    assert json.loads(log.with_suffix(".json").read_text()) == result


def test_every_demo_run_is_a_named_stage_job_of_the_code_location_launched_by_abos_demo(demo):
    """The Runs page names the stage and "abos demo", and the Overview timeline can place each run
    (it leaves out runs without a code location: it said "No runs" after a whole demo)."""
    import dagster as dg

    from pipelines.run import code_location_repository

    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    location = code_location_repository().code_location_origin.location_name
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = {run.run_id: run for run in (r.dagster_run for r in instance.get_run_records())}
    assert set(runs) == {run["run_id"] for run in result["pipeline"]["runs"]}
    for expected in result["pipeline"]["runs"]:
        run = runs[expected["run_id"]]
        assert run.job_name == expected["job"]
        assert run.tags["user"] == "abos demo"
        # One run over a stage's workspaces: one partition, or the range of them (pipelines/partitions.py).
        partition_tags = run_tags(expected["workspaces"]) if expected["workspaces"] else {}
        for tag in ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"):
            assert run.tags.get(tag) == partition_tags.get(tag), (expected, tag)
        origin = run.remote_job_origin
        assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) == (
            location, "__repository__", expected["job"])
    assert {run["job"] for run in result["pipeline"]["runs"]} == {
        "ingest_fx", "ingest_shopify", "ingest_stripe", "transform", "insights", "weekly_report"}


def test_dbt_tables_report_their_row_counts_to_dagster(demo, monkeypatch):
    """Each table dbt wrote carries `dagster/row_count` (the asset page's row count): the warehouse's count."""
    import dagster as dg

    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("ABOS_HOME", str(home))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    warehouse = load_settings().warehouse
    tables = {"ecommerce_daily_metrics": "metrics", "saas_daily_metrics": "metrics", "orders": "marts",
              "int_fx_rate_gaps": "intermediate"}
    counted = {}
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        for model in tables:
            observed = instance.fetch_observations(dg.AssetKey([model]), limit=1).records
            assert observed, model
            counted[model] = observed[0].asset_observation.metadata["dagster/row_count"].value
    for model, schema in tables.items():
        assert counted[model] == int(warehouse.query(f"select count(*) as n from {schema}.{model}")["n"][0]), model
    assert counted["orders"] > 0


def test_dagster_ui_shows_the_demo_runs_by_job_every_asset_group_and_a_report(demo, tmp_path):
    """The browser check on the demo's home, in headless chromium: the asset graph (groups, then every
    asset), the Runs page and the Overview timeline naming every job, and a report with its charts."""
    from scripts.browser_check import SHOTS
    from tests.e2e.test_browser import PNG_SIGNATURE, run_browser_check

    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    check = run_browser_check(tmp_path, "--home", str(home))
    assert check.returncode == 0, check.stderr[-4000:]
    for name in SHOTS.values():
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE), name
    # The docs show the screenshots this check takes (`scripts/browser_check.py --out docs/img --home ...`).
    docs = (REPO / "README.md").read_text() + (REPO / "docs" / "operations.md").read_text()
    for name in (SHOTS["graph"], SHOTS["runs"], SHOTS["report"]):
        assert (REPO / "docs" / "img" / name).read_bytes().startswith(PNG_SIGNATURE), name
        assert f"img/{name}" in docs, name


def test_a_second_weekly_report_run_says_the_outbox_files_were_delivered_before(demo, monkeypatch):
    """The week's report runs again (as on a second `abos demo`): nothing is sent twice, and the summary
    names the files an earlier run delivered instead of dropping them. (Last: it adds a run.)"""
    import importlib

    import dagster as dg

    import pipelines.definitions
    from pipelines.cli import summary_lines
    from pipelines.insights.assets import REPORTS
    from pipelines.run import LAUNCHED_BY_TAG, execute_stage_job, summarize

    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("ABOS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    defs = importlib.reload(pipelines.definitions).defs
    first = result["pipeline"]["summary"]["workspaces"]["demo-us-store"]
    week = Path(first["report"]).parent.name
    keys = [REPORTS, dg.AssetKey(["deliver", "reports"])]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = execute_stage_job(defs, "weekly_report", keys, "demo-us-store", instance,
                                {"ops": {REPORTS.to_python_identifier(): {"config": {"week": week}}}},
                                {LAUNCHED_BY_TAG: "abos demo"})
        assert run.success
        again = summarize(instance, defs.resolve_asset_graph(), [run.run_id], load_settings())
    facts = again["workspaces"]["demo-us-store"]
    assert facts["report"] == first["report"] and "outbox" not in facts
    assert sorted(facts["delivered_before"]) == sorted(first["outbox"])
    assert all(f"[abos]     outbox: {path} (delivered by an earlier run, not sent again)"
               in [f"[abos] {line}" for line in summary_lines(again)] for path in first["outbox"])
