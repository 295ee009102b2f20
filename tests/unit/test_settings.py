from pathlib import Path

import pytest

from pipelines.settings import SettingsError, load_settings


def test_defaults_live_under_abos_home(tmp_path):
    settings = load_settings({"ABOS_HOME": str(tmp_path / "data")})
    assert settings.home == tmp_path / "data"
    assert settings.warehouse.kind == "duckdb"
    assert settings.warehouse.duckdb_path == tmp_path / "data" / "warehouse.duckdb"
    assert settings.dagster_home == tmp_path / "data" / "dagster"
    assert settings.shopify_api_version == "2026-10"
    assert settings.stripe_api_version == "2026-10-28.endive"


def test_default_home_is_dot_abos_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).home == tmp_path / ".abos"


def test_postgres_url_is_accepted_and_redacted():
    settings = load_settings({"ABOS_WAREHOUSE_URL": "postgres://abos:s3cret@db.internal:5432/analytics"})
    assert settings.warehouse.kind == "postgres"
    assert settings.warehouse.url == "postgresql://abos:s3cret@db.internal:5432/analytics"
    assert "s3cret" not in settings.warehouse.redacted
    assert settings.warehouse.redacted == "postgresql://abos:***@db.internal:5432/analytics"


@pytest.mark.parametrize("url", ["mysql://x@y/z", "duckdb:///", "postgresql://host-only:5432/"])
def test_bad_warehouse_urls_name_the_variable(url):
    with pytest.raises(SettingsError, match="ABOS_WAREHOUSE_URL"):
        load_settings({"ABOS_WAREHOUSE_URL": url})


def test_overrides(tmp_path):
    settings = load_settings(
        {
            "ABOS_HOME": str(tmp_path),
            "DAGSTER_HOME": str(tmp_path / "elsewhere"),
            "ABOS_WORKSPACES": str(tmp_path / "tenants.yaml"),
            "ABOS_SHOPIFY_API_VERSION": "2026-07",
        }
    )
    assert settings.dagster_home == tmp_path / "elsewhere"
    assert settings.workspaces_file == Path(tmp_path / "tenants.yaml")
    assert settings.shopify_api_version == "2026-07"
