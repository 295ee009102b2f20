"""`abos-dbt`, the dbt executable Dagster runs: its `--version` answer and its import cost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.settings import PROJECT_ROOT
from pipelines.transform import DBT_PROJECT_DIR

BIN = Path(sys.executable).parent


def test_dagster_dbt_reads_the_same_version_from_abos_dbt_as_from_dbt():
    """dagster-dbt runs `<executable> --version` before every dbt command and keeps the version in it;
    `abos-dbt` answers from the installed packages instead of starting dbt."""
    # dagster-dbt imports dbt: here, not at collection, where no other test file needs it
    from dagster_dbt import DbtCliResource

    def version_seen(executable: str):
        return DbtCliResource(project_dir=str(DBT_PROJECT_DIR), dbt_executable=str(BIN / executable))._cli_version

    assert version_seen("abos-dbt") == version_seen("dbt")


def test_the_transform_package_loads_without_dagster():
    """`abos-dbt` and the test session's manifest check import pipelines.transform: without Dagster
    (seconds of CPU per process), and with the project folder the settings name."""
    code = "import sys, pipelines.transform; print(sorted(m for m in ('dagster', 'dbt', 'pipelines.settings') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert DBT_PROJECT_DIR == PROJECT_ROOT / "dbt_project"
