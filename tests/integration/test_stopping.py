"""Commands stop within seconds and leave nothing behind (issue 19, "stuck"): dbt dies with its parent,
holds the warehouse lock while it lives, and SIGTERM or Ctrl-C stop `abos dbt`, `abos run` and `abos demo`."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipelines.settings import load_settings
from tests.conftest import REPO

BIN = Path(sys.executable).parent
DBT = str(BIN / "dbt")


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "abos"
    return {**os.environ, "ABOS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
            "ABOS_WAREHOUSE_URL": f"duckdb:///{home / 'warehouse.duckdb'}"}


def dbt_descendant(parent: subprocess.Popen, timeout: float = 60) -> psutil.Process:
    """The dbt process `parent` started, once it runs (dbt takes seconds to import, so it is caught alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert parent.poll() is None, "the command ended before dbt started"
        for child in psutil.Process(parent.pid).children(recursive=True):
            try:
                if DBT in child.cmdline()[:2]:
                    return child
            except psutil.Error:
                continue
        time.sleep(0.02)
    raise AssertionError("dbt never started")


def lock_is_held(env: dict[str, str]) -> bool:
    path = load_settings(env).warehouse.lock_path
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


# `abos dbt`, and dbt as Dagster starts it: `abos-dbt` run by a process (the Dagster step) that is killed.
PARENTS = {
    "abos dbt": [str(BIN / "abos"), "dbt", "debug"],
    "a Dagster step running abos-dbt": [sys.executable, "-c",
                                        f"import subprocess; subprocess.run([{str(BIN / 'abos-dbt')!r}, 'debug'])"],
    # The dbt assets hand the warehouse's dbt variables on (step_dbt_env): abos-dbt then loads no settings
    # (an unusable ABOS_WAREHOUSE_URL would stop it) and still takes that warehouse's lock.
    "a Dagster step handing abos-dbt its warehouse": [sys.executable, "-c", (
        "import os, subprocess\n"
        "from pipelines.settings import load_settings\n"
        "from pipelines.transform import step_dbt_env\n"
        "with step_dbt_env(load_settings().warehouse):\n"
        "    os.environ['ABOS_WAREHOUSE_URL'] = 'unusable://'\n"
        f"    subprocess.run([{str(BIN / 'abos-dbt')!r}, 'debug'])")],
}


@pytest.mark.parametrize("parent", PARENTS)
def test_dbt_holds_the_warehouse_lock_and_dies_with_its_killed_parent(env, parent):
    process = subprocess.Popen(PARENTS[parent], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    dbt = dbt_descendant(process)
    assert os.getpgid(dbt.pid) == dbt.pid != os.getpgid(process.pid)  # its own process group
    assert lock_is_held(env)  # dbt writes the warehouse only under the project's lock
    descendants = psutil.Process(process.pid).children(recursive=True)  # dbt, and abos-dbt between
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, f"outlived their killed parent: {[p.cmdline() for p in alive]}"
    assert not lock_is_held(env)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_abos_dbt_and_its_dbt_within_seconds(env, signum):
    process = subprocess.Popen(PARENTS["abos dbt"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    dbt = dbt_descendant(process)
    sent = time.monotonic()
    process.send_signal(signum)
    assert process.wait(timeout=15) == 128 + signum
    assert time.monotonic() - sent < 10
    assert not psutil.pid_exists(dbt.pid) or dbt.status() == psutil.STATUS_ZOMBIE
    assert not lock_is_held(env)
