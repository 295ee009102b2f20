"""`abos demo` end to end on the tiny sandbox, as a newcomer runs it: the real command in a fresh ABOS_HOME."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces
from tests.conftest import REPO

UNSET = ["ABOS_WAREHOUSE_URL", "ABOS_WORKSPACES", "ABOS_DAGSTER_PG_URL", "ABOS_SMTP_HOST", "DEMO_SLACK_BOT_TOKEN",
         "ABOS_OPERATOR_SLACK_CHANNEL", "ABOS_LLM_API_KEY", "OPENAI_API_KEY"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run `abos demo --size tiny` once; its exit code, JSON result, summary lines and ABOS_HOME."""
    home = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update({"ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    abos = Path(sys.executable).parent / "abos"
    done = subprocess.run([str(abos), "demo", "--size", "tiny", "--as-of", "2026-11-25"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    summary = done.stderr[done.stderr.rfind("[abos] summary:"):].splitlines()
    # stdout is the JSON result alone: progress, dbt's included, goes to stderr
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
    """Progress lines and the summary, not Dagster's per-event debug log (`abos demo -v` shows that)."""
    done, result, summary, home = demo
    assert done.returncode == 0, done.stderr[-3000:]
    assert " - DEBUG - " not in done.stderr and " - INFO - " not in done.stderr
    assert done.stderr.count("[abos] materializing") == len(result["pipeline"]["runs"])
