"""No usage statistics leave the project's processes: dlt's and dbt's telemetry are off by default
(pipelines/__init__.py, dbt_project.yml `flags`; Dagster's in deploy/dagster.yaml).

A child process records every host name it looks up or connects to (Python's audit hooks see each
`getaddrinfo` and `connect`), runs a dlt pipeline into a DuckDB file and a dbt command on the project,
and prints them: only loopback may appear. Without the settings, dlt looks up telemetry.scalevector.ai
at each step and dbt fishtownanalytics.sinter-collect.com."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.transform import DBT_PROJECT_DIR, dbt_env
from pipelines.warehouse import Warehouse

PROBE = """
import json, sys
hosts = []
def record(event, args):
    if event == "socket.getaddrinfo":
        hosts.append(str(args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple):
        hosts.append(str(args[1][0]))
sys.addaudithook(record)

import pipelines  # noqa: F401  (what every process of the project imports first)
import dlt
from dbt.cli.main import dbtRunner

work = sys.argv[1]
dlt.pipeline(pipeline_name="probe", pipelines_dir=work + "/dlt", dataset_name="counted",
             destination=dlt.destinations.duckdb(work + "/loaded.duckdb")).run([{"a": 1}], table_name="t")
assert dbtRunner().invoke(["ls", "-s", "orders", "--quiet"]).success
print(json.dumps(hosts))
"""
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def test_neither_dlt_nor_dbt_reports_usage(tmp_path: Path):
    env = {**os.environ, **dbt_env(Warehouse(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")),
           "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR), "DBT_TARGET_PATH": str(tmp_path / "target"),
           "DBT_LOG_PATH": str(tmp_path / "logs")}
    for name in ("RUNTIME__DLTHUB_TELEMETRY", "DBT_SEND_ANONYMOUS_USAGE_STATS", "DO_NOT_TRACK"):
        env.pop(name, None)  # the defaults, not the caller's environment
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=DBT_PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    hosts = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(hosts) <= LOOPBACK, hosts
