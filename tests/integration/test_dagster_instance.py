"""The production Dagster instance (deploy/dagster-postgres.yaml) on the real Postgres."""

import dagster as dg
import psycopg2
import pytest
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from pipelines.run import dagster_instance, ensure_dagster_home
from pipelines.settings import SettingsError, load_settings

WORKSPACES = dg.StaticPartitionsDefinition(["demo-us-store", "demo-saas"])


@dg.asset(key=["insights", "probe"], partitions_def=WORKSPACES)
def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"workspace": context.partition_key})


@pytest.fixture
def postgres_home(abos_home, new_pg_database, monkeypatch):
    """ABOS_HOME with an empty DAGSTER_HOME, and ABOS_DAGSTER_PG_URL naming a fresh database."""
    url = new_pg_database()
    monkeypatch.setenv("ABOS_DAGSTER_PG_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
    return url


def test_a_run_through_the_postgres_instance_is_recorded_in_postgres(postgres_home):
    with dagster_instance(load_settings()) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        result = dg.materialize([probe], partition_key="demo-saas", instance=instance)
        assert result.success

    with psycopg2.connect(postgres_home) as conn, conn.cursor() as cur:
        cur.execute("select status, partition from runs where run_id = %s", [result.run_id])
        assert cur.fetchone() == ("SUCCESS", "demo-saas")
        cur.execute("select dagster_event_type, asset_key, partition from event_logs "
                    "where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'", [result.run_id])
        assert cur.fetchall() == [("ASSET_MATERIALIZATION", '["insights", "probe"]', "demo-saas")]
        cur.execute("select distinct dagster_event_type from event_logs where run_id = %s", [result.run_id])
        assert {"STEP_START", "STEP_SUCCESS"} <= {row[0] for row in cur.fetchall()}
        cur.execute("select table_name from information_schema.tables where table_name in ('instigators', 'job_ticks')")
        assert {row[0] for row in cur.fetchall()} == {"instigators", "job_ticks"}  # schedule and sensor state


def test_a_sqlite_dagster_yaml_left_in_dagster_home_is_an_error_naming_the_fix(abos_home, monkeypatch):
    ensure_dagster_home(load_settings())  # the SQLite default, as a first `abos demo` writes it
    monkeypatch.setenv("ABOS_DAGSTER_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster")
    with pytest.raises(SettingsError, match="ABOS_DAGSTER_PG_URL.*dagster-postgres.yaml"):
        ensure_dagster_home(load_settings())


def test_a_url_without_the_psycopg2_driver_is_an_error_naming_the_setting(monkeypatch):
    monkeypatch.setenv("ABOS_DAGSTER_PG_URL", "postgresql://dagster:secret@db:5432/dagster")
    with pytest.raises(SettingsError, match=r"ABOS_DAGSTER_PG_URL=.*\*\*\*.*postgresql\+psycopg2://") as error:
        load_settings()
    assert "secret" not in str(error.value)
