"""The one place that reads the environment: data directory, warehouse URL, Dagster home, API pins.

| variable | default | meaning |
|---|---|---|
| ABOS_HOME | ./.abos | data directory (warehouse file, reports, outbox, sandbox cache) |
| ABOS_WAREHOUSE_URL | duckdb:///<ABOS_HOME>/warehouse.duckdb | the warehouse; postgresql://... also works |
| DAGSTER_HOME | <ABOS_HOME>/dagster | Dagster instance directory |
| ABOS_DAGSTER_PG_URL | none | Dagster's storage on Postgres, postgresql+psycopg2://...; none means SQLite |
| ABOS_WORKSPACES | ./workspaces.yaml | the tenants file |
| ABOS_SHOPIFY_API_VERSION | 2026-10 | Shopify Admin API version the connector pins |
| ABOS_STRIPE_API_VERSION | 2026-10-28.endive | Stripe API version the connector pins |
| ABOS_LLM_MODEL | gpt-4o-mini | model that writes report summaries |
| ABOS_LLM_BASE_URL | OpenAI's | any OpenAI-compatible API |
| ABOS_LLM_API_KEY | OPENAI_API_KEY | the LLM key; none means template summaries |
| ABOS_LLM_TIMEOUT_SECONDS | 20 | per LLM attempt |
| ABOS_LLM_MAX_RETRIES | 2 | LLM retries after the first attempt |
| ABOS_SMTP_HOST | none | SMTP server; none means emails go to the outbox |
| ABOS_SMTP_PORT | 587 / 465 / 25 | by ABOS_SMTP_SECURITY (starttls / ssl / none) |
| ABOS_SMTP_SECURITY | starttls | starttls, ssl or none |
| ABOS_SMTP_USER | none | SMTP login; none means no AUTH |
| ABOS_SMTP_PASSWORD_ENV | ABOS_SMTP_PASSWORD | the variable that holds the SMTP password |
| ABOS_SMTP_FROM | AI Business OS <reports@localhost> | sender of report emails |
| ABOS_SMTP_TIMEOUT_SECONDS | 30 | connecting and each SMTP command |
| ABOS_SMTP_DATA_TIMEOUT_SECONDS | 600 | the server's answer to a sent message (RFC 5321: 10 minutes) |
| ABOS_SLACK_BASE_URL | https://slack.com/api/ | Slack Web API base URL |
| ABOS_DELIVERY_MAX_ATTEMPTS | 3 | attempts per delivery before it is marked failed for good |
| ABOS_OPERATOR_SLACK_CHANNEL | none | operator alerts' channel; none means the outbox |
| ABOS_OPERATOR_SLACK_TOKEN_ENV | ABOS_OPERATOR_SLACK_TOKEN | the variable that holds the operator bot token |
| ABOS_STEP_TIMEOUT_SECONDS | 10800 | a step running longer fails its run (0: no limit); docs/operations.md |
| ABOS_SYNC_WORKERS | 4 | workspaces an ingestion step syncs at once (each paced by its own API limit); docs/operations.md |
| ABOS_DUCKDB_MEMORY_LIMIT | 2GB | DuckDB's memory_limit for dlt's and dbt's connections (it spills to disk past it) |
| ABOS_DUCKDB_THREADS | the machine's cores | DuckDB's threads for dlt's and dbt's connections |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.errors import SettingsError
from pipelines.secret_shapes import looks_like_secret
from pipelines.warehouse import DUCKDB_MEMORY_LIMIT, Warehouse, parse_warehouse_url, redact

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHOPIFY_API_VERSION = "2026-10"
DEFAULT_STRIPE_API_VERSION = "2026-10-28.endive"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_LLM_TIMEOUT_SECONDS = 20.0
DEFAULT_LLM_MAX_RETRIES = 2
DEFAULT_SLACK_BASE_URL = "https://slack.com/api/"
DEFAULT_SMTP_FROM = "AI Business OS <reports@localhost>"
SMTP_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
DEFAULT_DELIVERY_MAX_ATTEMPTS = 3
DEFAULT_SMTP_TIMEOUT_SECONDS = 30.0
DEFAULT_SMTP_DATA_TIMEOUT_SECONDS = 600.0  # RFC 5321 4.5.3.2.6: a client waits 10 minutes for it
DEFAULT_STEP_TIMEOUT_SECONDS = 3 * 3600.0  # a full sync of the large benchmark store takes well under this
# Workspaces one ingestion step syncs at once: their waits on the APIs (pacing, bulk exports) overlap
# (docs/performance.md, "Many tenants: a step's syncs side by side").
DEFAULT_SYNC_WORKERS = 4


@dataclass(frozen=True)
class LlmSettings:
    """Which OpenAI-compatible model writes report summaries, and how long to wait for it.

    Attributes:
        model: model name sent to the API.
        base_url: API base URL; None means OpenAI's.
        api_key: the key; None means no LLM (template summaries, no error). Never shown in repr.
        timeout_seconds: per attempt, passed to the client.
        max_retries: retries after the first attempt, passed to the client (it backs off between).
    """

    model: str = DEFAULT_LLM_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_seconds: float = DEFAULT_LLM_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_LLM_MAX_RETRIES


@dataclass(frozen=True)
class SmtpSettings:
    """The SMTP server report emails go through; no host means they go to the outbox.

    Attributes:
        host: server name; None means no SMTP (emails are written to the outbox).
        port: server port.
        security: "starttls" (upgrade a plain connection), "ssl" (TLS from the start) or "none".
        user: login name; None means no AUTH.
        password: the password, read from the variable ABOS_SMTP_PASSWORD_ENV names. Never shown in repr.
        password_env: that variable's name, for error messages.
        sender: the From address.
        timeout_seconds: connecting and each command.
        data_timeout_seconds: the wait for the server's answer once a message is sent.
    """

    host: str | None = None
    port: int = SMTP_PORTS["starttls"]
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str = "ABOS_SMTP_PASSWORD"
    sender: str = DEFAULT_SMTP_FROM
    timeout_seconds: float = DEFAULT_SMTP_TIMEOUT_SECONDS
    data_timeout_seconds: float = DEFAULT_SMTP_DATA_TIMEOUT_SECONDS


@dataclass(frozen=True)
class DeliverySettings:
    """Where reports and operator alerts go (docs/delivery.md).

    Attributes:
        smtp: the SMTP server.
        slack_base_url: Slack Web API base URL (a local stand-in in tests).
        max_attempts: attempts per delivery before it is marked failed for good.
        operator_channel: Slack channel for operator alerts; None means the outbox.
        operator_token: bot token for operator alerts. Never shown in repr.
        operator_token_env: the variable the token is read from, for error messages.
    """

    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    slack_base_url: str = DEFAULT_SLACK_BASE_URL
    max_attempts: int = DEFAULT_DELIVERY_MAX_ATTEMPTS
    operator_channel: str | None = None
    operator_token: str | None = field(default=None, repr=False)
    operator_token_env: str = "ABOS_OPERATOR_SLACK_TOKEN"


DEFAULT_FX_ECB_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"


@dataclass(frozen=True)
class FxSettings:
    """Where exchange rates come from (docs/configuration.md, "Exchange rates").

    Attributes:
        ecb_url: the ECB's euro reference rates, eurofxref-hist as .zip, .csv or .xml.
        rates_file: the operator's CSV (`date,currency,units_per_eur`) for currencies the ECB lacks.
    """

    ecb_url: str = DEFAULT_FX_ECB_URL
    rates_file: Path | None = None


WAREHOUSE_URL_VARIABLE = "ABOS_WAREHOUSE_URL"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Warehouse = field(repr=False)  # its URL may hold a password
    dagster_home: Path
    workspaces_file: Path
    shopify_api_version: str
    stripe_api_version: str
    llm: LlmSettings = field(default_factory=LlmSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    fx: FxSettings = field(default_factory=FxSettings)
    dagster_pg_url: str | None = field(default=None, repr=False)  # may hold a password
    step_timeout_seconds: float = DEFAULT_STEP_TIMEOUT_SECONDS  # 0: no limit
    sync_workers: int = DEFAULT_SYNC_WORKERS
    warehouse_from_env: bool = False  # the URL is ABOS_WAREHOUSE_URL of this process's environment

    def warehouse_resource(self) -> Warehouse:
        """The `warehouse` resource the Definitions bind: ABOS_WAREHOUSE_URL as a Dagster EnvVar, read
        when a run starts and never shown in the UI or run config (it may hold a password), or the
        default DuckDB file under ABOS_HOME when the variable is unset."""
        if not self.warehouse_from_env:
            return self.warehouse
        return Warehouse(url=dg.EnvVar(WAREHOUSE_URL_VARIABLE), duckdb_memory_limit=self.warehouse.duckdb_memory_limit,
                         duckdb_threads=self.warehouse.duckdb_threads)

    @property
    def sandbox_dir(self) -> Path:
        return self.home / "sandbox"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"


class Environment(BaseModel):
    """The variables of the table above, typed and checked: each field is read from the variable it
    is aliased to, and an empty variable counts as unset. `load_settings` builds `Settings` from it;
    a value that cannot be used is a `SettingsError` naming its variable."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    home: Path = Field(Path(".abos"), alias="ABOS_HOME")
    warehouse_url: str | None = Field(None, alias=WAREHOUSE_URL_VARIABLE, repr=False)
    dagster_home: Path | None = Field(None, alias="DAGSTER_HOME")
    dagster_pg_url: str | None = Field(None, alias="ABOS_DAGSTER_PG_URL", repr=False)
    workspaces_file: Path = Field(PROJECT_ROOT / "workspaces.yaml", alias="ABOS_WORKSPACES")
    shopify_api_version: str = Field(DEFAULT_SHOPIFY_API_VERSION, alias="ABOS_SHOPIFY_API_VERSION")
    stripe_api_version: str = Field(DEFAULT_STRIPE_API_VERSION, alias="ABOS_STRIPE_API_VERSION")
    llm_model: str = Field(DEFAULT_LLM_MODEL, alias="ABOS_LLM_MODEL")
    llm_base_url: str | None = Field(None, alias="ABOS_LLM_BASE_URL")
    llm_api_key: str | None = Field(None, alias="ABOS_LLM_API_KEY", repr=False)
    openai_api_key: str | None = Field(None, alias="OPENAI_API_KEY", repr=False)
    llm_timeout_seconds: float = Field(DEFAULT_LLM_TIMEOUT_SECONDS, alias="ABOS_LLM_TIMEOUT_SECONDS", ge=0)
    llm_max_retries: int = Field(DEFAULT_LLM_MAX_RETRIES, alias="ABOS_LLM_MAX_RETRIES", ge=0)
    smtp_host: str | None = Field(None, alias="ABOS_SMTP_HOST")
    smtp_port: int | None = Field(None, alias="ABOS_SMTP_PORT", ge=0)  # None: by the security
    smtp_security: Literal["starttls", "ssl", "none"] = Field("starttls", alias="ABOS_SMTP_SECURITY")
    smtp_user: str | None = Field(None, alias="ABOS_SMTP_USER")
    smtp_password_env: str = Field("ABOS_SMTP_PASSWORD", alias="ABOS_SMTP_PASSWORD_ENV")
    smtp_from: str = Field(DEFAULT_SMTP_FROM, alias="ABOS_SMTP_FROM")
    smtp_timeout_seconds: float = Field(DEFAULT_SMTP_TIMEOUT_SECONDS, alias="ABOS_SMTP_TIMEOUT_SECONDS", ge=0)
    smtp_data_timeout_seconds: float = Field(DEFAULT_SMTP_DATA_TIMEOUT_SECONDS, alias="ABOS_SMTP_DATA_TIMEOUT_SECONDS",
                                             ge=0)
    slack_base_url: str = Field(DEFAULT_SLACK_BASE_URL, alias="ABOS_SLACK_BASE_URL")
    delivery_max_attempts: int = Field(DEFAULT_DELIVERY_MAX_ATTEMPTS, alias="ABOS_DELIVERY_MAX_ATTEMPTS", ge=1)
    operator_slack_channel: str | None = Field(None, alias="ABOS_OPERATOR_SLACK_CHANNEL")
    operator_slack_token_env: str = Field("ABOS_OPERATOR_SLACK_TOKEN", alias="ABOS_OPERATOR_SLACK_TOKEN_ENV")
    step_timeout_seconds: float = Field(DEFAULT_STEP_TIMEOUT_SECONDS, alias="ABOS_STEP_TIMEOUT_SECONDS", ge=0)
    sync_workers: int = Field(DEFAULT_SYNC_WORKERS, alias="ABOS_SYNC_WORKERS", ge=1)
    duckdb_memory_limit: str = Field(DUCKDB_MEMORY_LIMIT, alias="ABOS_DUCKDB_MEMORY_LIMIT")
    duckdb_threads: int = Field(0, alias="ABOS_DUCKDB_THREADS", ge=0)  # 0: one per core
    fx_ecb_url: str = Field(DEFAULT_FX_ECB_URL, alias="ABOS_FX_ECB_URL")
    fx_rates_file: Path | None = Field(None, alias="ABOS_FX_RATES_FILE")

    @field_validator("smtp_security", mode="before")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("duckdb_memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)", value, re.IGNORECASE):
            raise ValueError("must be a size such as 2GB, 512MiB or 50%")
        return value

    @field_validator("fx_ecb_url")
    @classmethod
    def _fetchable(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "file://")):
            raise ValueError("must be an http(s) or file:// URL")
        return value

    @field_validator("slack_base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") + "/"  # slack-sdk joins method names onto the base URL

    @field_validator("smtp_password_env", "operator_slack_token_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        """A setting that names another environment variable (which holds a secret): never a value."""
        if looks_like_secret(value) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must name an environment variable, not hold a value (it is not shown)")
        return value

    @field_validator("dagster_pg_url")
    @classmethod
    def _psycopg2(cls, value: str | None) -> str | None:
        """Dagster reads the URL unchanged, so it must name the psycopg2 driver."""
        if value is None or value.startswith("postgresql+psycopg2://"):
            return value
        raise ValueError("must start with postgresql+psycopg2:// (dagster-postgres uses the psycopg2 driver; "
                         "SQLAlchemy would otherwise pick psycopg 3, which is not installed)")

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Environment:
        """The variables of `env` (unset when empty).

        Raises:
            SettingsError: naming each variable that cannot be used, and why (secrets not shown).
        """
        try:
            return cls.model_validate({name: value for name, value in env.items() if value})
        except ValidationError as exc:
            raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None


def _problem(error: Any) -> str:
    """One validation error as `VARIABLE='value': what is wrong` (passwords masked, secrets' names not shown)."""
    variable, value = str(error["loc"][0]), error["input"]
    shown = "" if variable in _NAMES_OF_SECRETS else f"={redact(value) if variable in _URLS else value!r}"
    why = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"].lower()
    return f"{variable}{shown}: {why}"


# A variable that should name a secret's variable may hold the secret by mistake: its value is never shown.
_NAMES_OF_SECRETS = {"ABOS_SMTP_PASSWORD_ENV", "ABOS_OPERATOR_SLACK_TOKEN_ENV"}
_URLS = {field.alias for field in Environment.model_fields.values() if not field.repr}  # may hold a password


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment).

    Raises:
        SettingsError: a variable that cannot be used, named.
    """
    given = env is not None
    env = dict(os.environ if env is None else env)
    read = Environment.read(env)
    home = read.home.expanduser().absolute()
    warehouse_url = read.warehouse_url or f"duckdb:///{home / 'warehouse.duckdb'}"
    return Settings(
        home=home,
        warehouse=Warehouse(url=parse_warehouse_url(warehouse_url), duckdb_memory_limit=read.duckdb_memory_limit,
                            duckdb_threads=read.duckdb_threads),
        warehouse_from_env=not given and read.warehouse_url is not None,
        dagster_home=(read.dagster_home or home / "dagster").expanduser().absolute(),
        workspaces_file=read.workspaces_file.expanduser(),
        dagster_pg_url=read.dagster_pg_url,
        shopify_api_version=read.shopify_api_version,
        stripe_api_version=read.stripe_api_version,
        llm=LlmSettings(model=read.llm_model, base_url=read.llm_base_url,
                        api_key=read.llm_api_key or read.openai_api_key,
                        timeout_seconds=read.llm_timeout_seconds, max_retries=read.llm_max_retries),
        delivery=DeliverySettings(
            smtp=SmtpSettings(
                host=read.smtp_host,
                port=read.smtp_port if read.smtp_port is not None else SMTP_PORTS[read.smtp_security],
                security=read.smtp_security,
                user=read.smtp_user,
                password=env.get(read.smtp_password_env) or None,
                password_env=read.smtp_password_env,
                sender=read.smtp_from,
                timeout_seconds=read.smtp_timeout_seconds,
                data_timeout_seconds=read.smtp_data_timeout_seconds,
            ),
            slack_base_url=read.slack_base_url,
            max_attempts=read.delivery_max_attempts,
            operator_channel=read.operator_slack_channel,
            operator_token=env.get(read.operator_slack_token_env) or None,
            operator_token_env=read.operator_slack_token_env,
        ),
        step_timeout_seconds=read.step_timeout_seconds,
        sync_workers=read.sync_workers,
        fx=FxSettings(ecb_url=read.fx_ecb_url,
                      rates_file=read.fx_rates_file.expanduser().absolute() if read.fx_rates_file else None),
    )
