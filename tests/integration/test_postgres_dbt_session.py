"""dbt's Postgres sessions run without JIT compilation and nested loops, keeping the caller's PGOPTIONS.

Postgres compiles every query costed above jit_above_cost to machine code first, and a dbt model's
plan is costed far above it: at large@0.1 the compilation cost more than the queries themselves
(int_saas_changed_subscriptions 17.3 s with JIT, 4.7 s without; docs/performance.md, "Postgres
against DuckDB at large@0.1"); without indexes a nested loop compares every pair of rows, which
Postgres picks whenever it underestimates a side (`subscriptions` after a change: 39.7 s, 0.35 s by
hash). `dbt_env` turns both off through libpq's PGOPTIONS.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipelines.settings import load_settings
from pipelines.transform import DBT_PROJECT_DIR, dbt_env


@pytest.mark.postgres
@pytest.mark.slow  # dbt's start-up alone takes 10-20 s on the shared machine
def test_dbt_sessions_on_postgres_run_without_jit_and_nested_loops(tmp_path, new_pg_database, monkeypatch):
    settings = load_settings({"ABOS_HOME": str(tmp_path), "ABOS_WAREHOUSE_URL": new_pg_database()})
    monkeypatch.setenv("PGOPTIONS", "-c statement_timeout=654321")  # the caller's own option stays
    env = {**os.environ, **dbt_env(settings.warehouse), "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
           "DBT_TARGET_PATH": str(tmp_path / "target"), "DBT_LOG_PATH": str(tmp_path / "logs")}
    query = ("select current_setting('jit') as jit, current_setting('enable_nestloop') as nestloop, "
             "current_setting('statement_timeout') as timeout")
    done = subprocess.run([str(os.path.join(os.path.dirname(sys.executable), "dbt")), "show", "--inline", query,
                           "--output", "json", "--log-format", "text"],
                          cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert '"jit": "off"' in done.stdout and '"nestloop": "off"' in done.stdout, done.stdout[-3000:]
    assert '"timeout": "654321ms"' in done.stdout, done.stdout[-3000:]
