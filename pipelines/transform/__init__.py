"""Transform: the dbt project as Dagster assets. `run_dbt` runs dbt on the warehouse (its target from
`Warehouse.dbt_profile_env`): under the warehouse lock, and never outliving its parent.

This module imports neither Dagster nor the settings at import time: `abos-dbt` starts here twice per
dbt step, and the test session's controller checks the manifest here (a Dagster import is seconds of CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.duckdb_lock import duckdb_write_lock
from pipelines.processes import run_child, stop_with_parent
from pipelines.transform import unchanged_views

if TYPE_CHECKING:
    from pipelines.warehouse import Warehouse

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"  # settings.PROJECT_ROOT / "dbt_project"
# The refresh's `dbt build`: models and their data tests. Unit tests check the models' SQL against
# fixed inputs, not the data, so they run where the SQL changes (the integration tests' builds, CI),
# not on every refresh (docs/performance.md, "Incremental by day"). `--no-write-json`: dbt serializes
# its whole manifest to the invocation's target folder twice (after loading it and after the run),
# ≈ 0.3 CPU s of a build after a small change at any scale, and nothing reads it (the Dagster
# definitions and the stored failures read the project's manifest from `dbt parse`); what the run
# built comes from dbt's result events instead of run_results.json (docs/performance.md, "dbt's
# fixed cost per build").
BUILD = ("build", "--exclude-resource-type", "unit_test", "--no-write-json")
# dagster-dbt's invocation folders kept under the project's target folder (`prune_invocation_targets`).
KEEP_INVOCATIONS = 20
KEEP_INVOCATIONS_SECONDS = 24 * 3600


def dbt_env(warehouse: Warehouse) -> dict[str, str]:
    """The variables dbt runs with: `dbt_project/profiles.yml`'s target (from the warehouse) and the test selection."""
    # A subset (`-s`, or the refresh sensor requesting models as their parents land) runs only the
    # tests whose parents are all selected: a test never reads a model the run did not build.
    # dbt's log file keeps its own text format when the console's is JSON (dagster-dbt's): it holds
    # every debug event (each SQL statement), and JSON costs a protobuf-to-dict conversion per event
    # (docs/performance.md, "dbt's own CPU in the refresh").
    return {"DBT_INDIRECT_SELECTION": "cautious", "DBT_LOG_FORMAT_FILE": "debug", **warehouse.dbt_profile_env()}


def run_dbt(args: Sequence[str], warehouse: Warehouse) -> int:
    """dbt `args` in dbt_project/ against `warehouse`; dbt's exit code.

    dbt holds the project's warehouse lock (the lock's descriptor is passed on to it), runs in its
    own process group, dies with its parent and stops on SIGTERM or Ctrl-C (pipelines/processes.py):
    a killed run never leaves dbt writing the warehouse behind it.
    """
    return _run_dbt(args, dbt_env(warehouse))


def _run_dbt(args: Sequence[str], profile_env: Mapping[str, str]) -> int:
    """`run_dbt` with the warehouse given by `dbt_env`'s variables (the lock is the DuckDB file's)."""
    dbt = Path(sys.executable).parent / "dbt"
    env = {**os.environ, **profile_env, "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR)}
    if list(args) == ["--version"]:
        # dagster-dbt asks before every command. dbt itself would take its whole import (18 s on a
        # loaded machine) and a request to PyPI for the latest version; the installed one is enough.
        print(dbt_version_text(), flush=True)
        return 0
    target = DBT_PROJECT_DIR / env.get("DBT_TARGET_PATH", "target")  # dagster-dbt's: one per invocation
    cached = _parse_cache(profile_env)
    if cached.exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target / PARTIAL_PARSE)
    duckdb_path = profile_env.get("ABOS_DBT_DUCKDB_PATH") if profile_env.get("ABOS_DBT_TARGET") == "duckdb" else None
    with duckdb_write_lock(Path(duckdb_path)) if duckdb_path else contextlib.nullcontext() as lock:
        # the refresh's build leaves out the staging and quarantine views while they are unchanged
        code = unchanged_views.run_build(
            lambda command, command_env: run_child([str(dbt), *command], cwd=DBT_PROJECT_DIR, env=command_env,
                                                   pass_fds=() if lock is None else (lock,)),
            args, env, profile_env, DBT_PROJECT_DIR)
    if code == 0 and (target / PARTIAL_PARSE).exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target / PARTIAL_PARSE, cached.with_suffix(f".{os.getpid()}"))
        os.replace(cached.with_suffix(f".{os.getpid()}"), cached)  # atomic: another dbt may read it now
    return code


def _parse_cache(profile_env: Mapping[str, str]) -> Path:
    """Where dbt's parse of the project for a warehouse (`dbt_env`'s variables) is kept between invocations.

    dbt parses again only the files that changed since its last parse (partial parsing), unless the
    profile differs: the DuckDB file's path and settings are part of it. dagster-dbt gives each
    invocation a target folder of its own, seeded with the project's `target/partial_parse.msgpack`
    (written by `make install` for the default warehouse), so with any other warehouse every run
    parsed the whole project (half a minute on a loaded machine: docs/performance.md). One file per
    profile; dbt checks it (project files, profile, dbt version) and parses fully when it is stale.
    """
    profile = {name: value for name, value in profile_env.items() if name.startswith("ABOS_DBT_")}  # profiles.yml's
    key = hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()[:16]
    return DBT_PROJECT_DIR / "target" / "partial_parse" / f"{key}.msgpack"


def prune_invocation_targets(current: Path, keep: int = KEEP_INVOCATIONS,
                             younger_than: float = KEEP_INVOCATIONS_SECONDS) -> list[Path]:
    """Remove dagster-dbt's older invocation folders next to `current`; the removed ones.

    dagster-dbt gives every dbt command a target folder of its own (`<op>-<run>-<id>` under
    `DBT_TARGET_PATH`): dbt's log with every statement and the compiled SQL (no JSON artifacts: `BUILD`).
    Nothing removes them, and the webhook refresh runs dbt every few seconds while webhooks arrive.
    Kept: the `keep` newest, every folder touched in the last `younger_than` seconds (a concurrent
    invocation is still writing its log; an operator reading last night's failure), and `current`.
    Only folders named like `current` (the same op) are considered."""
    op = current.name.split("-", 1)[0]
    siblings = [p for p in current.parent.glob(f"{op}-*") if p.is_dir() and p != current]

    def touched(folder: Path) -> float | None:
        """When the folder or its log last changed; None when another step's pruning removed it."""
        try:
            log = folder / "dbt.log"
            return max(folder.stat().st_mtime, log.stat().st_mtime if log.exists() else 0.0)
        except FileNotFoundError:
            return None

    newest_first = sorted(((mtime, p) for p in siblings if (mtime := touched(p)) is not None), reverse=True)
    now = time.time()
    removed = [p for rank, (mtime, p) in enumerate(newest_first, start=1)
               if rank >= keep and now - mtime > younger_than]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def dbt_version_text() -> str:
    """The first lines of `dbt --version`: the installed dbt-core (not the latest release, which dbt asks PyPI for)."""
    return f"Core:\n  - installed: {importlib.metadata.version('dbt-core')}"


STEP_ENV = "ABOS_DBT_ENV"  # `dbt_env` of the step's warehouse, as JSON, for `abos-dbt` (`step_dbt_env`)


@contextlib.contextmanager
def step_dbt_env(warehouse: Warehouse) -> Iterator[None]:
    """`dbt_env(warehouse)` handed to the `abos-dbt` that dagster-dbt starts in this block (it passes
    this process's environment on, and takes no other): `abos-dbt` then need not load the settings,
    whose import of Dagster costs seconds of CPU per dbt command (docs/performance.md)."""
    before = os.environ.get(STEP_ENV)
    os.environ[STEP_ENV] = json.dumps(dbt_env(warehouse))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STEP_ENV, None)
        else:
            os.environ[STEP_ENV] = before


def dbt_guard_main() -> None:
    """`abos-dbt`: the dbt executable Dagster runs (`run_dbt` with this process's arguments).

    dagster-dbt runs `abos-dbt --version` before each dbt command: answered as `run_dbt` does, before
    loading the settings (they import Dagster, seconds of CPU). The dbt assets hand the warehouse's
    dbt variables on (`step_dbt_env`), so the settings are loaded only when they did not."""
    if sys.argv[1:] == ["--version"]:
        print(dbt_version_text(), flush=True)
        sys.exit(0)
    stop_with_parent()  # the Dagster step died: SIGTERM, which stops dbt (run_child handles it)
    if STEP_ENV in os.environ:
        sys.exit(_run_dbt(sys.argv[1:], json.loads(os.environ[STEP_ENV])))
    from pipelines.settings import load_settings

    sys.exit(run_dbt(sys.argv[1:], load_settings().warehouse))


PARTIAL_PARSE = "partial_parse.msgpack"
MANIFEST_SOURCES = ("models", "macros", "seeds", "tests", "dbt_project.yml")


def manifest_path(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    return project_dir / "target" / "manifest.json"


def _stale_sources(project_dir: Path) -> list[Path] | None:
    """The project files newer than the manifest (None: there is no manifest)."""
    path = manifest_path(project_dir)
    if not path.exists():
        return None
    built = path.stat().st_mtime
    sources = [project_dir / name for name in MANIFEST_SOURCES]
    files = [f for source in sources for f in ([source] if source.is_file() else source.rglob("*")) if f.is_file()]
    return [f for f in files if f.stat().st_mtime > built]


def require_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """The dbt manifest Dagster loads the models from, built beforehand by `make install` (tests build
    it when their session starts); loading the Definitions never runs dbt.

    Raises:
        RuntimeError: the manifest is missing or older than a model, macro, seed or test; the message
            names the command that builds it.
    """
    stale = _stale_sources(project_dir)
    if stale == []:
        return manifest_path(project_dir)
    why = "is missing" if stale is None else f"is older than {stale[0].relative_to(project_dir)}"
    raise RuntimeError(f"the dbt manifest {manifest_path(project_dir)} {why}, so Dagster cannot load the dbt "
                       "models: run `make install` (it runs `dbt parse` in dbt_project/)")


def ensure_manifest(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    """The dbt manifest, rebuilt with `dbt parse` when it is missing or older than a model, macro,
    seed or test: for commands and test sessions, never for loading the Definitions."""
    path = manifest_path(project_dir)
    stale = _stale_sources(project_dir)
    if stale == []:
        return path
    print(f"[abos] {path} is {'older than the dbt project' if stale else 'missing'}: running dbt parse",
          file=sys.stderr, flush=True)
    dbt = Path(sys.executable).parent / "dbt"
    done = subprocess.run([str(dbt), "parse", "--profiles-dir", ".", "--quiet"], cwd=project_dir,
                          capture_output=True, text=True)
    if done.returncode != 0 or not path.exists():
        raise RuntimeError(f"`dbt parse` in {project_dir} failed, so Dagster cannot load the dbt models:\n"
                           f"{(done.stdout + done.stderr).strip()[-2000:]}")
    return path
