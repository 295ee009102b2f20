"""The import rules of docs/architecture.md hold: no cycles, stages in order, the sandbox apart.

The contracts live in pyproject.toml ([tool.importlinter]); `lint-imports` checks every import,
function-local ones included, so a cycle cannot hide inside a function.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
