"""Shared fixtures: a fresh Postgres database per test session, the reference folder, temp homes; the dbt
manifest is brought up to date before any test runs."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests import pg
from tests.schedule import longest_first

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


def pytest_configure(config):
    """Build the dbt manifest the Definitions load, when a model changed since `make install` (once,
    in the controlling process: xdist workers start after it)."""
    if not hasattr(config, "workerinput"):
        from pipelines.transform import ensure_manifest

        ensure_manifest()
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # --dist loadfile keeps the order below (tests/schedule.py)


def pytest_collection_modifyitems(config, items):
    """The longest test files first, for the xdist workers to finish together (tests/schedule.py)."""
    items[:] = longest_first(items)


@pytest.fixture(scope="session")
def pg_admin_url():
    """A PostgreSQL server URL (see tests/pg.py). Fails, never skips, when none can be had."""
    try:
        url, throwaway = pg.server_url()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield url
    if throwaway is not None:
        throwaway.stop()


@pytest.fixture(scope="session")
def pg_url(pg_admin_url):
    """A database created for this test session and dropped after it."""
    name = f"abos_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = pg.create_database(pg_admin_url, name)
    yield url
    pg.drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def reference() -> Path:
    """../shared/reference: the real API contracts. Tests that need it skip, saying so, without it."""
    if not REFERENCE.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the reference contracts at {REFERENCE}", pytrace=False)
        pytest.skip(f"needs the real API contracts at {REFERENCE} (../shared/reference); not on this machine")
    return REFERENCE


@pytest.fixture
def abos_home(tmp_path, monkeypatch) -> Path:
    """An isolated ABOS_HOME (and DAGSTER_HOME inside it) for one test."""
    home = tmp_path / "abos"
    monkeypatch.setenv("ABOS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("ABOS_WAREHOUSE_URL", raising=False)
    (home / "dagster").mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def new_pg_database(pg_admin_url):
    """A factory of fresh, empty databases (dropped after the session): `url = new_pg_database()`."""
    created: list[str] = []

    def create() -> str:
        name = f"abos_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return pg.create_database(pg_admin_url, name)

    yield create
    for name in created:
        pg.drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def ask_server(tmp_path_factory):
    """`abos serve` over hand-worked metric tables, for the ask API, the Slack command and the web page
    (tests/ask_server.py): one per test process."""
    from tests.ask_server import serve_ask

    with serve_ask(tmp_path_factory.mktemp("ask-server")) as server:
        yield server
