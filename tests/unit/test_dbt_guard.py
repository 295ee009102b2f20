"""`abos-dbt`, the dbt executable Dagster runs: its `--version` answer and its import cost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipelines.settings import PROJECT_ROOT
from pipelines.transform import DBT_PROJECT_DIR, prune_invocation_targets

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


def test_invocation_folders_are_removed_only_when_old_and_beyond_the_newest(tmp_path):
    """`prune_invocation_targets`: of one op's folders, the newest `keep` and any touched within
    `younger_than` stay (a concurrent dbt still writing its log among them); other ops' stay."""
    now = time.time()

    def folder(name: str, hours_ago: float, log_hours_ago: float | None = None) -> Path:
        path = tmp_path / name
        path.mkdir()
        os.utime(path, (now - hours_ago * 3600,) * 2)
        if log_hours_ago is not None:
            (path / "dbt.log").write_text("log")
            os.utime(path / "dbt.log", (now - log_hours_ago * 3600,) * 2)
            os.utime(path, (now - hours_ago * 3600,) * 2)
        return path

    current = folder("dbt_models-run0-a", 0)
    old = [folder(f"dbt_models-old-{i}", 30 + i) for i in range(4)]
    writing = folder("dbt_models-busy-b", 40, log_hours_ago=0.01)  # created long ago, its log just written
    other_op = folder("other_models-x-c", 100)
    removed = prune_invocation_targets(current, keep=3, younger_than=24 * 3600)
    # siblings newest first: busy (log now), old-0 (30 h), old-1, old-2, old-3: keep 3 = current + 2
    assert sorted(removed) == sorted(old[1:])
    assert all(p.exists() for p in (current, writing, old[0], other_op))
    assert not any(p.exists() for p in old[1:])
    fresh = [folder(f"dbt_models-new-{i}", 1) for i in range(5)]
    assert prune_invocation_targets(current, keep=2, younger_than=24 * 3600) == [old[0]]
    assert all(p.exists() for p in fresh)
