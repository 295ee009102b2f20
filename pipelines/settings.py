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
| ABOS_DUCKDB_MEMORY_LIMIT | 2GB | DuckDB's memory_limit for dlt's and dbt's connections (it spills to disk past it) |
| ABOS_DUCKDB_THREADS | the machine's cores | DuckDB's threads for dlt's and dbt's connections |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

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


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment)."""
    env_given = env
    env = dict(os.environ if env is None else env)
    home = Path(env.get("ABOS_HOME") or ".abos").expanduser().absolute()
    from_env = env_given is None and bool(env.get(WAREHOUSE_URL_VARIABLE))
    duckdb = _duckdb_settings(env)
    return Settings(
        home=home,
        warehouse=Warehouse(url=parse_warehouse_url(env.get(WAREHOUSE_URL_VARIABLE)
                                                    or f"duckdb:///{home / 'warehouse.duckdb'}"), **duckdb),
        warehouse_from_env=from_env,
        dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").expanduser().absolute(),
        workspaces_file=Path(env.get("ABOS_WORKSPACES") or PROJECT_ROOT / "workspaces.yaml").expanduser(),
        dagster_pg_url=_dagster_pg_url(env.get("ABOS_DAGSTER_PG_URL") or None),
        shopify_api_version=env.get("ABOS_SHOPIFY_API_VERSION") or DEFAULT_SHOPIFY_API_VERSION,
        stripe_api_version=env.get("ABOS_STRIPE_API_VERSION") or DEFAULT_STRIPE_API_VERSION,
        llm=LlmSettings(
            model=env.get("ABOS_LLM_MODEL") or DEFAULT_LLM_MODEL,
            base_url=env.get("ABOS_LLM_BASE_URL") or None,
            api_key=env.get("ABOS_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None,
            timeout_seconds=_number(env, "ABOS_LLM_TIMEOUT_SECONDS", DEFAULT_LLM_TIMEOUT_SECONDS, float),
            max_retries=_number(env, "ABOS_LLM_MAX_RETRIES", DEFAULT_LLM_MAX_RETRIES, int),
        ),
        delivery=_delivery_settings(env),
        step_timeout_seconds=_number(env, "ABOS_STEP_TIMEOUT_SECONDS", DEFAULT_STEP_TIMEOUT_SECONDS, float),
        fx=_fx_settings(env),
    )


def _duckdb_settings(env: Mapping[str, str]) -> dict[str, str | int]:
    """The warehouse resource's DuckDB limits (ABOS_DUCKDB_MEMORY_LIMIT, ABOS_DUCKDB_THREADS), checked."""
    limit = (env.get("ABOS_DUCKDB_MEMORY_LIMIT") or DUCKDB_MEMORY_LIMIT).strip()
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)", limit, re.IGNORECASE):
        raise SettingsError(f"ABOS_DUCKDB_MEMORY_LIMIT={limit!r} must be a size such as 2GB, 512MiB or 50%")
    threads = int(_number(env, "ABOS_DUCKDB_THREADS", 0, int))
    return {"duckdb_memory_limit": limit, "duckdb_threads": threads}


def _fx_settings(env: Mapping[str, str]) -> FxSettings:
    url = env.get("ABOS_FX_ECB_URL") or DEFAULT_FX_ECB_URL
    if not url.startswith(("http://", "https://", "file://")):
        raise SettingsError(f"ABOS_FX_ECB_URL={url!r} must be an http(s) or file:// URL")
    rates_file = env.get("ABOS_FX_RATES_FILE") or None
    return FxSettings(ecb_url=url, rates_file=Path(rates_file).expanduser().absolute() if rates_file else None)


def _delivery_settings(env: Mapping[str, str]) -> DeliverySettings:
    security = (env.get("ABOS_SMTP_SECURITY") or "starttls").lower()
    if security not in SMTP_PORTS:
        raise SettingsError(f"ABOS_SMTP_SECURITY={security!r} must be one of {', '.join(SMTP_PORTS)}")
    password_env = _variable_name(env, "ABOS_SMTP_PASSWORD_ENV", "ABOS_SMTP_PASSWORD")
    token_env = _variable_name(env, "ABOS_OPERATOR_SLACK_TOKEN_ENV", "ABOS_OPERATOR_SLACK_TOKEN")
    max_attempts = int(_number(env, "ABOS_DELIVERY_MAX_ATTEMPTS", DEFAULT_DELIVERY_MAX_ATTEMPTS, int))
    if max_attempts < 1:
        raise SettingsError(f"ABOS_DELIVERY_MAX_ATTEMPTS={max_attempts} must be at least 1")
    base_url = env.get("ABOS_SLACK_BASE_URL") or DEFAULT_SLACK_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(f"ABOS_SLACK_BASE_URL={base_url!r} must be an http(s) URL")
    return DeliverySettings(
        smtp=SmtpSettings(
            host=env.get("ABOS_SMTP_HOST") or None,
            port=int(_number(env, "ABOS_SMTP_PORT", SMTP_PORTS[security], int)),
            security=security,
            user=env.get("ABOS_SMTP_USER") or None,
            password=env.get(password_env) or None,
            password_env=password_env,
            sender=env.get("ABOS_SMTP_FROM") or DEFAULT_SMTP_FROM,
            timeout_seconds=_number(env, "ABOS_SMTP_TIMEOUT_SECONDS", DEFAULT_SMTP_TIMEOUT_SECONDS, float),
            data_timeout_seconds=_number(env, "ABOS_SMTP_DATA_TIMEOUT_SECONDS", DEFAULT_SMTP_DATA_TIMEOUT_SECONDS,
                                         float),
        ),
        # slack-sdk joins method names onto the base URL, so it must end with a slash.
        slack_base_url=base_url.rstrip("/") + "/",
        max_attempts=max_attempts,
        operator_channel=env.get("ABOS_OPERATOR_SLACK_CHANNEL") or None,
        operator_token=env.get(token_env) or None,
        operator_token_env=token_env,
    )


def _variable_name(env: Mapping[str, str], name: str, default: str) -> str:
    """A setting that names another environment variable (which holds a secret)."""
    variable = env.get(name) or default
    if looks_like_secret(variable) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        raise SettingsError(f"{name} must name an environment variable, not hold a value (it is not shown)")
    return variable


def _dagster_pg_url(url: str | None) -> str | None:
    """Dagster's Postgres storage URL; it names the psycopg2 driver, as Dagster reads it unchanged."""
    if url is None or url.startswith("postgresql+psycopg2://"):
        return url
    raise SettingsError(
        f"ABOS_DAGSTER_PG_URL={redact(url)!r} must start with postgresql+psycopg2:// "
        "(dagster-postgres uses the psycopg2 driver; SQLAlchemy would otherwise pick psycopg 3, which is not installed)"
    )


def _number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    """A non-negative number setting, or `default` when unset."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value
