"""DuckDB's memory limit and threads reach every connection to the warehouse: dlt's loads and dbt's build.

Without a limit DuckDB takes up to 80% of the machine (dbt reached 20 GiB on the large sandbox,
docs/performance.md); ABOS_DUCKDB_MEMORY_LIMIT and ABOS_DUCKDB_THREADS set both for dlt and dbt.
"""

from __future__ import annotations

import os
import subprocess
import sys

import dlt
import pytest

from pipelines.settings import load_settings
from pipelines.transform import DBT_PROJECT_DIR, dbt_env

LIMITS = {"ABOS_DUCKDB_MEMORY_LIMIT": "300MB", "ABOS_DUCKDB_THREADS": "1"}
SHOWN = {"memory_limit": "286.1 MiB", "threads": "1"}  # DuckDB shows 300 MB (10^6) in MiB


def _settings(tmp_path):
    return load_settings({"ABOS_HOME": str(tmp_path), **LIMITS})


def test_dlt_connections_get_the_limits(tmp_path):
    settings = _settings(tmp_path)
    pipeline = dlt.pipeline(pipeline_name="limits", pipelines_dir=str(tmp_path / "dlt"),
                            destination=settings.warehouse.dlt_destination(), dataset_name="limits")
    pipeline.run([{"id": 1}], table_name="probe")
    with pipeline.sql_client() as client:
        found = client.execute_sql("select current_setting('memory_limit'), current_setting('threads')")[0]
    assert [str(value) for value in found] == list(SHOWN.values())


@pytest.mark.slow  # dbt's start-up alone takes 10-20 s on the shared machine
def test_dbt_connection_gets_the_limits(tmp_path):
    settings = _settings(tmp_path)
    env = {**os.environ, **dbt_env(settings.warehouse), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    query = "select current_setting('memory_limit') as m, current_setting('threads') as t"
    done = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "dbt")), "show", "--inline", query,
                           "--output", "json", "--log-format", "text"],
                          cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f'"m": "{SHOWN["memory_limit"]}"' in done.stdout and f'"t": {SHOWN["threads"]}' in done.stdout, done.stdout
