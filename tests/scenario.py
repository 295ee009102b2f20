"""Run hand-worked scenarios through the real pipeline path: fixture → sandbox → dlt sync → dbt build.

A scenario is a sandbox fixture file (docs/sandbox.md, "Fixture mode"). Each of its workspaces is
served over HTTP, synced with the real connectors (and the sandbox's ECB rates) into a real
warehouse, and then one `dbt build`
runs for all of them (dbt start-up is the expensive part, so tests put many scenarios, one per
workspace, into one file).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from pipelines.deliver.alerts import alert_operator
from pipelines.ingest.fx import sync_fx
from pipelines.ingest.sync import sync
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.settings import Settings, load_settings
from pipelines.transform import DBT_PROJECT_DIR, dbt_env
from pipelines.workspaces import load_workspaces

DBT = Path(sys.executable).parent / "dbt"
# The sandbox allows each Stripe account Stripe's live-mode 100 requests/s (DEFAULT_RATE_LIMIT), though
# its keys are test-mode keys, which the client paces at 20/s: paced as a live key instead (80%), a
# scenario's sync of ~70 requests waits ~0.9 s for the pace, not ~3.4 s (docs/testing.md).
SANDBOX_STRIPE_PACE = 80.0


@dataclass
class ScenarioWarehouse:
    """The warehouse a scenario was built in, with its settings; rows come back exactly as stored."""

    settings: Settings

    def query(self, sql: str, params: tuple | list = ()) -> list[dict[str, Any]]:
        """Rows as dicts (column names lower-case), on either database (`Warehouse.rows`)."""
        return self.settings.warehouse.rows(sql, params)


def workspaces_yaml(fixture: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """A workspaces.yaml for the fixture's workspaces, pointed at the running sandbox."""
    items = []
    for workspace_id, spec in fixture["workspaces"].items():
        if "shopify" in spec:
            connector = {"shopify": {"base_url": info["shopify"]["workspaces"][workspace_id]["base_url"],
                                     "access_token_env": "SCENARIO_SHOPIFY_TOKEN_" + workspace_id.replace("-", "_").upper()}}
            vertical = "ecommerce"
        else:
            connector = {"stripe": {"base_url": info["stripe"]["base_url"],
                                    "api_key_env": "SCENARIO_STRIPE_KEY_" + workspace_id.replace("-", "_").upper(),
                                    "requests_per_second": SANDBOX_STRIPE_PACE}}
            vertical = "saas"
        items.append({
            "id": workspace_id, "name": spec.get("name", workspace_id), "vertical": vertical,
            "timezone": spec.get("timezone", "UTC"),
            "currency": spec.get("reporting_currency") or spec.get("currency", "USD"),
            "connectors": connector,
        })
    return {"workspaces": items}


def secrets_env(info: dict[str, Any]) -> dict[str, str]:
    env = {}
    for workspace_id, creds in info["shopify"]["workspaces"].items():
        env["SCENARIO_SHOPIFY_TOKEN_" + workspace_id.replace("-", "_").upper()] = creds["access_token"]
    for workspace_id, creds in info["stripe"]["workspaces"].items():
        env["SCENARIO_STRIPE_KEY_" + workspace_id.replace("-", "_").upper()] = creds["api_key"]
    return env


def write_workspaces_table(settings: Settings) -> None:
    """What the `reference/workspaces` asset does, outside Dagster."""
    import dlt

    rows = [{"workspace_id": w.id, "name": w.name, "vertical": w.vertical, "timezone": w.timezone,
             "currency": w.currency} for w in load_workspaces(settings.workspaces_file)]
    dlt.pipeline(pipeline_name="reference", pipelines_dir=str(settings.home / "dlt"),
                 destination=settings.warehouse.dlt_destination(), dataset_name="reference").run(
        rows, table_name="workspaces", write_disposition="replace", primary_key="workspace_id")


def pinned_now(instant: datetime) -> tuple[str, str]:
    """dbt's `--vars` pinning the instant the models take "today" from (`abos_now`,
    dbt_project/macros/current_instant.sql): builds that are compared (DuckDB against Postgres, an
    incremental build against a full refresh) pass the same, so the real clock crossing a fixture
    workspace's midnight between them cannot move its as-of day. Every dbt command on one target
    should pass the same vars: dbt parses the whole project again when they change."""
    if instant.tzinfo is None:
        raise ValueError(f"pinned_now needs an aware datetime, got {instant!r}")
    return "--vars", json.dumps({"abos_now": instant.astimezone(UTC).isoformat().replace("+00:00", "Z")})


def run_dbt(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """`dbt <args>` in dbt_project/ against the scenario's warehouse; raises with dbt's output on failure."""
    env = {**os.environ, **dbt_env(settings.warehouse), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           "DBT_TARGET_PATH": str(settings.home / "dbt-target"), "DBT_LOG_PATH": str(settings.home / "dbt-logs")}
    result = subprocess.run([str(DBT), *args], check=False, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def postgres_materialized_ctes(warehouse: ScenarioWarehouse, *models: str) -> dict[str, set[str]]:
    """Each model's CTEs, as dbt compiles it now (one dbt command for them all), that Postgres
    materializes (its plan's `CTE <name>` nodes): a CTE read more than once is, unless it says
    `not materialized`."""
    run_dbt(warehouse.settings, "compile", "-s", *models)
    found = {}
    for model in models:
        compiled = next((warehouse.settings.home / "dbt-target" / "compiled").rglob(f"{model}.sql"))
        plan = [line.strip() for row in warehouse.query("explain " + compiled.read_text()) for line in row.values()]
        found[model] = {line.removeprefix("CTE ") for line in plan if line.startswith("CTE ")}
    return found


@contextmanager
def serving(store, workspaces: dict[str, Any], home: Path, warehouse_url: str | None,
            monkeypatch) -> Iterator[tuple[Settings, Sandbox]]:
    """Serve `store` and point the pipeline's settings at it: a workspaces.yaml for `workspaces`
    (fixture-style specs by id), their secrets, ABOS_HOME=`home`, and the warehouse (None: DuckDB)."""
    home.mkdir(parents=True, exist_ok=True)
    with Sandbox(store) as sandbox:
        info = sandbox.connection_info()
        (home / "workspaces.yaml").write_text(
            yaml.safe_dump(workspaces_yaml({"workspaces": workspaces}, info), sort_keys=False))
        monkeypatch.setenv("ABOS_HOME", str(home))
        monkeypatch.setenv("ABOS_WORKSPACES", str(home / "workspaces.yaml"))
        if warehouse_url:
            monkeypatch.setenv("ABOS_WAREHOUSE_URL", warehouse_url)
        else:
            monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
        for key, value in secrets_env(info).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ABOS_FX_ECB_URL", info["ecb"]["hist_zip"])  # the sandbox's ECB rates
        yield load_settings(), sandbox


def sync_all(settings: Settings) -> None:
    """Sync the exchange rates, and every connector of every workspace in the settings' workspaces file."""
    sync_fx(settings)
    for workspace in load_workspaces(settings.workspaces_file):
        for source in workspace.connectors:
            sync(source, workspace, settings, alert=functools.partial(alert_operator, settings))


def build_scenario(fixture_path: Path, home: Path, warehouse_url: str | None, monkeypatch,
                   dbt_args: tuple[str, ...] = ("build",)) -> ScenarioWarehouse:
    """Serve `fixture_path`, sync every workspace in it, run dbt once; returns the warehouse.

    `warehouse_url` None means a DuckDB file under `home`; `monkeypatch` sets the environment.
    """
    fixture = json.loads(Path(fixture_path).read_text())
    home.mkdir(parents=True, exist_ok=True)
    store = build_store(home / "sandbox.sqlite", fixtures=fixture_path)
    with serving(store, fixture["workspaces"], home, warehouse_url, monkeypatch) as (settings, _):
        sync_all(settings)
    write_workspaces_table(settings)
    if dbt_args:
        run_dbt(settings, *dbt_args)
    return ScenarioWarehouse(settings)
