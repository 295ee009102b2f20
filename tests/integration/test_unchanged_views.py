"""The refresh's `dbt build` leaves out the staging and quarantine views while their definition is the
deployed one, and builds them as before when anything they compile from changed
(pipelines/transform/unchanged_views.py; docs/performance.md, "dbt after a small change: the unchanged
views left out of the build").

The builds run a copy of the project cut down to the reference and Shopify staging views and their
data tests (the macros and `dbt_project.yml` as they are), through `unchanged_views.run_build` as
`run_dbt` and the benchmark run the refresh's build:
1. a first build creates the views and records them;
2. nothing changed: the views are left out (no view node in dbt's results), and their data tests still
   run, on the rows loaded since;
3. what must bring them back, each checked on the decision alone (no dbt run): a raw table that
   appeared (`conformed_source` compiles to it), a declared raw column added, a view dropped or
   re-created behind dbt's back, another value of a variable the project reads, and back to the
   recorded state; and what must not, as it changes no view's statement: a declared source table no
   view reads (the insights stage's `insights.customer_values`, written after dbt) and a raw column
   the project does not declare;
4. a model's SQL edited: the views are built, the edited one re-created (it has the new column), the
   others kept as deployed.
The default suite runs DuckDB; Postgres is behind `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import Settings, load_settings
from pipelines.transform import BUILD, DBT_PROJECT_DIR, dbt_env, manifest_path, unchanged_views
from pipelines.transform.unchanged_views import UnchangedViews

DBT = Path(sys.executable).parent / "dbt"
# with the insights stage's sources (declared, read by no view)
KEPT_FOLDERS = ("staging/reference", "staging/shopify", "insights")
VIEWS = {"stg_reference__workspaces", "stg_shopify__orders", "stg_shopify__order_lines", "stg_shopify__refunds",
         "stg_shopify__refund_lines", "stg_shopify__products", "stg_shopify__product_variants",
         "stg_shopify__customers"}
# the refresh's build as dbt is asked for it, with run_results.json written for the test to read
REFRESH = [arg for arg in BUILD if arg != "--no-write-json"]


def small_project(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "tests", "seeds"))
    for folder in project.joinpath("models").rglob("*"):
        if folder.is_dir() and folder.relative_to(project / "models").as_posix() not in KEPT_FOLDERS \
                and not any(kept.startswith(folder.relative_to(project / "models").as_posix() + "/")
                            for kept in KEPT_FOLDERS):
            shutil.rmtree(folder)
    return project


def build(settings: Settings, project: Path) -> dict[str, str]:
    """The refresh's build of `project`: each model's message (kept views: 'unchanged') and test's status."""
    env = {**os.environ, **dbt_env(settings.warehouse), "DBT_PROFILES_DIR": str(project),
           "DBT_TARGET_PATH": str(settings.home / "dbt-target"), "DBT_LOG_PATH": str(settings.home / "dbt-logs")}
    outputs = []

    def run(command: list[str], command_env: dict[str, str]) -> int:
        outputs.append(subprocess.run([str(DBT), *command], check=False, cwd=project, env=command_env, capture_output=True,
                                      text=True))
        return outputs[-1].returncode

    code = unchanged_views.run_build(run, REFRESH, env, dbt_env(settings.warehouse), project)
    assert code == 0, f"{outputs[-1].stdout[-6000:]}\n{outputs[-1].stderr[-2000:]}"
    results = json.loads((settings.home / "dbt-target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".", 2)[-1]: r["adapter_response"].get("_message") if r["unique_id"].startswith("model.")
            else r["status"] for r in results if r["unique_id"].split(".", 1)[0] in ("model", "test")}


def decision(settings: Settings, project: Path, **env: str) -> bool:
    """Whether a build now would leave the views out."""
    args, _ = UnchangedViews(dbt_env(settings.warehouse), project, {**os.environ, **dbt_env(settings.warehouse),
                                                                   **env}).plan()
    return "--exclude" in args


def cycle(settings: Settings, project: Path) -> None:
    warehouse = settings.warehouse
    with warehouse.transaction() as db:
        db.execute("create schema if not exists shopify")
        db.execute("create table shopify.products (workspace_id varchar, id varchar, title varchar)")
    first = build(settings, project)
    assert VIEWS <= set(first), first
    assert "unchanged" not in {first[view] for view in VIEWS}
    tests = {name for name in first if name not in VIEWS}
    assert any(name.startswith("unique_combination_stg_shopify__products") for name in tests), tests

    # 2. unchanged: left out, and the data tests run on today's rows
    with warehouse.transaction() as db:
        db.execute("insert into shopify.products values ('shop', 'p1', 'Tea')")
    second = build(settings, project)
    assert not VIEWS & set(second), second
    assert set(second) == tests and set(second.values()) == {"pass"}, second
    assert warehouse.rows("select product_id from staging.stg_shopify__products") == [{"product_id": "p1"}]

    # 3. what brings them back, decided without building
    assert decision(settings, project)
    for change, undo in (
        # the customers view compiles to the raw table now
        ("create table shopify.customers (workspace_id varchar, id varchar)", "drop table shopify.customers"),
        # a declared column is no longer a typed null
        ("alter table shopify.products add column vendor varchar", "alter table shopify.products drop column vendor"),
    ):
        with warehouse.transaction() as db:
            db.execute(change)
        assert not decision(settings, project), change
        with warehouse.transaction() as db:
            db.execute(undo)
        assert decision(settings, project), undo
    for change in (
        # a table the insights stage writes after dbt: a declared source no view reads
        ("create schema if not exists insights", "create table insights.customer_values (workspace_id varchar)"),
        # a column the project does not declare (conformed_source compiles to the table as before)
        ("alter table shopify.products add column undeclared_field varchar",),
    ):
        with warehouse.transaction() as db:
            for statement in change:
                db.execute(statement)
        assert decision(settings, project), change
    (project / "models" / "staging" / "reference" / "stg_reference__workspaces.sql").write_text(
        (project / "models" / "staging" / "reference" / "stg_reference__workspaces.sql").read_text()
        .replace("upper(currency) as reporting_currency", "upper(currency) as reporting_currency,\n"
                 "        '{{ env_var(\"ABOS_TEST_VIEW_MARK\", \"a\") }}' as mark"))
    assert not decision(settings, project)  # the project's files changed

    # 4. the edited view re-created, the others kept
    third = build(settings, project)
    assert third["stg_reference__workspaces"] not in ("unchanged", None), third
    assert {third[view] for view in VIEWS - {"stg_reference__workspaces"}} == {"unchanged"}, third
    assert warehouse.rows("select count(*) as n from staging.stg_reference__workspaces where mark = 'a'") == [{"n": 0}]
    assert decision(settings, project)
    assert not decision(settings, project, ABOS_TEST_VIEW_MARK="b")  # a variable the project reads
    with warehouse.transaction() as db:
        db.execute("drop view staging.stg_shopify__customers")
    assert not decision(settings, project)


def test_unchanged_views_are_left_out_duckdb(tmp_path: Path):
    cycle(load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'w.duckdb'}"}),
          small_project(tmp_path))


@pytest.mark.slow
def test_unchanged_views_are_left_out_postgres(tmp_path: Path, new_pg_database):
    cycle(load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()}),
          small_project(tmp_path))


def test_only_views_without_hooks_are_left_out():
    """A left-out view runs no hook: only views whose hooks render nothing for a view may be left out
    (`analyze_table` analyzes tables only); `forecast_metrics`, whose hooks create the table it reads,
    is built every time. No view is left out with persisted docs (its comment is not a fingerprint)."""
    nodes = json.loads(manifest_path().read_text())["nodes"]
    left_out = {node["name"]: node for node in nodes.values() if unchanged_views.left_out(node)}
    assert len(left_out) >= 25
    for name, node in left_out.items():
        assert node["config"]["pre-hook"] == [], name
        assert [hook["sql"] for hook in node["config"]["post-hook"]] == ["{{ analyze_table() }}"], name
        assert not (node["config"].get("persist_docs") or {}).get("relation"), name
    views = {node["name"] for node in nodes.values()
             if node["resource_type"] == "model" and node["config"]["materialized"] == "view"}
    assert "forecast_metrics" in views - set(left_out)


def test_the_sources_the_views_read_come_from_dbts_parse():
    """The key's sources are those the left-out views read, with their declared columns, as dbt's parse
    (`partial_parse.msgpack`) gives them: the same as dbt's JSON manifest of the project says; the
    quarantine table the customers view reads among them, no insights table."""
    nodes, sources = (json.loads(manifest_path().read_text())[key] for key in ("nodes", "sources"))
    expected = sorted({(sources[parent]["schema"], sources[parent]["identifier"],
                        tuple(sorted(column["name"].lower() for column in sources[parent]["columns"].values())))
                       for node in nodes.values() if unchanged_views.left_out(node)
                       for parent in node["depends_on"]["nodes"] if parent.startswith("source.")})
    reads = unchanged_views.views_reads(manifest_path().parent / unchanged_views.PARTIAL_PARSE)
    assert reads is not None and [(schema, table, tuple(columns)) for schema, table, columns in reads] == expected
    tables = {f"{schema}.{table}" for schema, table, _ in reads}
    assert {"stripe.quarantine_customers", "shopify.orders", "fx.operator_rates"} <= tables
    assert not {table for table in tables if table.startswith("insights.")}
    assert unchanged_views.views_reads(manifest_path().parent / "missing.msgpack") is None


@pytest.mark.parametrize(("args", "whole"), [
    (list(BUILD), True),
    (["--no-use-color", *BUILD, "--select", "fqn:*"], True),
    (["build"], True),
    ([*BUILD, "--full-refresh"], False),
    ([*BUILD, "--select", "orders"], False),
    ([*BUILD, "--vars", "{abos_now: x}"], False),
    (["run"], False),
    ([*BUILD, "--exclude", "orders"], False),
])
def test_only_the_whole_build_leaves_views_out(args: list[str], whole: bool):
    assert unchanged_views.whole_build(args) is whole


def test_the_dbt_asset_outputs_the_views_the_build_left_out(tmp_path: Path):
    """When the build says it left the views out (its marker in the invocation's target folder), each
    selected staging or quarantine view gets its output, named as dagster-dbt names a model's (after
    its asset key); other views and models get none; without the marker, nothing."""
    from pipelines.transform.assets import AbosDbtTranslator, views_left_out

    manifest = json.loads(manifest_path().read_text())
    translator = AbosDbtTranslator("duckdb")
    selected = {"stg_shopify__orders", "quarantine_stripe_invoices", "forecast_metrics", "orders", "int_days"}
    assert list(views_left_out(manifest, tmp_path, selected, translator)) == []
    unchanged_views.run_build(lambda args, env: 0, ["run"], {"DBT_TARGET_PATH": str(tmp_path)}, {}, tmp_path)
    assert not unchanged_views.left_out_by(tmp_path)  # not the whole build: no decision, no marker
    (tmp_path / unchanged_views.MARKER).write_text("")
    outputs = list(views_left_out(manifest, tmp_path, selected, translator))
    assert [output.output_name for output in outputs] == ["quarantine_stripe_invoices", "stg_shopify__orders"]
    assert {output.metadata["status"].value for output in outputs} == {"unchanged"}
