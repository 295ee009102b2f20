import os
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import REPO


# The CLI's check of workspace.yaml's code location: in make test, test_orchestration runs the same
# Definitions.validate_loadable in process, and the demo's browser check loads workspace.yaml in the UI.
@pytest.mark.slow
def test_dagster_definitions_validate(abos_home):
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_postgres_harness_gives_a_fresh_database(pg_url):
    with psycopg2.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("select current_database(), count(*) from pg_tables where schemaname = 'public'")
        database, tables = cur.fetchone()
    assert database.startswith("abos_test_")
    assert tables == 0
