import os
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


def test_delivery_defaults_send_nothing_anywhere():
    delivery = load_settings({}).delivery
    assert delivery.smtp.host is None and delivery.operator_channel is None
    assert (delivery.smtp.security, delivery.smtp.port) == ("starttls", 587)
    assert delivery.slack_base_url == "https://slack.com/api/"
    assert delivery.max_attempts == 3


def test_delivery_settings_read_secrets_from_the_variables_they_name():
    env = {"ABOS_SMTP_HOST": "mail.example.com", "ABOS_SMTP_SECURITY": "ssl", "ABOS_SMTP_USER": "reports",
           "ABOS_SMTP_PASSWORD_ENV": "MAIL_PW", "MAIL_PW": "hunter2", "ABOS_SLACK_BASE_URL": "http://127.0.0.1:9/api",
           "ABOS_OPERATOR_SLACK_CHANNEL": "#ops", "ABOS_OPERATOR_SLACK_TOKEN": "xoxb-ops",
           "ABOS_DELIVERY_MAX_ATTEMPTS": "5"}
    delivery = load_settings(env).delivery
    assert (delivery.smtp.port, delivery.smtp.password, delivery.smtp.user) == (465, "hunter2", "reports")
    assert delivery.slack_base_url == "http://127.0.0.1:9/api/"
    assert (delivery.operator_channel, delivery.operator_token, delivery.max_attempts) == ("#ops", "xoxb-ops", 5)
    assert "hunter2" not in repr(delivery) and "xoxb-ops" not in repr(delivery)


@pytest.mark.parametrize("env, name", [
    ({"ABOS_SMTP_SECURITY": "tls"}, "ABOS_SMTP_SECURITY"),
    ({"ABOS_SMTP_PORT": "smtp"}, "ABOS_SMTP_PORT"),
    ({"ABOS_DELIVERY_MAX_ATTEMPTS": "0"}, "ABOS_DELIVERY_MAX_ATTEMPTS"),
    ({"ABOS_SMTP_PASSWORD_ENV": "pass word!"}, "ABOS_SMTP_PASSWORD_ENV"),
    ({"ABOS_SLACK_BASE_URL": "slack.com/api"}, "ABOS_SLACK_BASE_URL"),
])
def test_bad_delivery_settings_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        load_settings(env)


def test_duckdb_limits_default_to_2gb_and_one_thread_per_core():
    assert load_settings({}).warehouse.duckdb_config() == {"memory_limit": "2GB", "threads": os.cpu_count()}


def test_duckdb_limits_come_from_the_environment():
    warehouse = load_settings({"ABOS_DUCKDB_MEMORY_LIMIT": "512MiB", "ABOS_DUCKDB_THREADS": "1"}).warehouse
    assert warehouse.duckdb_config() == {"memory_limit": "512MiB", "threads": 1}


@pytest.mark.parametrize("env", [{"ABOS_DUCKDB_MEMORY_LIMIT": "lots"}, {"ABOS_DUCKDB_THREADS": "two"},
                                 {"ABOS_DUCKDB_THREADS": "-1"}])
def test_bad_duckdb_limits_name_the_variable(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        load_settings(env)


def test_every_bad_variable_is_named_at_once_with_its_value_and_no_secret():
    env = {"ABOS_SMTP_PORT": "smtp", "ABOS_LLM_MAX_RETRIES": "-2", "ABOS_SMTP_PASSWORD_ENV": "hunter2 pasted",
           "ABOS_DAGSTER_PG_URL": "postgresql://dagster:s3cret@db:5432/dagster", "ABOS_SMTP_HOST": ""}
    with pytest.raises(SettingsError) as error:
        load_settings(env)
    message = str(error.value)
    assert "ABOS_SMTP_PORT='smtp'" in message and "ABOS_LLM_MAX_RETRIES='-2'" in message
    assert "ABOS_DAGSTER_PG_URL='postgresql://dagster:***@db:5432/dagster'" in message
    assert "ABOS_SMTP_PASSWORD_ENV: must name an environment variable" in message
    assert "hunter2" not in message and "s3cret" not in message
    assert "ABOS_SMTP_HOST" not in message  # empty is unset, not wrong
