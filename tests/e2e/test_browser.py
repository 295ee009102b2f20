"""The browser check (scripts/browser_check.py) against the real Dagster UI in headless chromium.

It installs Debian's chromium when it is missing (CI runs as root on a clean machine). The check of the
whole UI (asset graph, Runs page, timeline, a report) runs on the demo's home, in tests/e2e/test_demo.py.
"""

import os
import subprocess
import sys

from tests.conftest import REPO

CHECK = REPO / "scripts" / "browser_check.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_browser_check(out_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECK), "--out", str(out_dir), *args],
        cwd=REPO, capture_output=True, text=True, env=os.environ.copy(), timeout=900,
    )


def test_a_code_location_that_fails_to_load_fails_the_check(abos_home, tmp_path):
    (tmp_path / "broken_definitions.py").write_text('raise RuntimeError("broken on purpose")\n')
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_file:\n      relative_path: broken_definitions.py\n")

    result = run_browser_check(tmp_path / "shots", "--workspace", str(workspace))

    assert result.returncode == 1, result.stdout + result.stderr[-4000:]
    assert "asset graph shows 0 asset nodes" in result.stderr
    # It served its own throwaway instance: the caller's homes stay untouched.
    assert not any((abos_home / "dagster").iterdir())
