"""The one place that reads the environment: data directory, warehouse URL, Dagster home, API pins.

| variable | default | meaning |
|---|---|---|
| ABOS_HOME | ./.abos | data directory (warehouse file, reports, outbox, sandbox cache) |
| ABOS_WAREHOUSE_URL | duckdb:///<ABOS_HOME>/warehouse.duckdb | the warehouse; postgresql://... also works |
| DAGSTER_HOME | <ABOS_HOME>/dagster | Dagster instance directory |
| ABOS_WORKSPACES | ./workspaces.yaml | the tenants file |
| ABOS_SHOPIFY_API_VERSION | 2026-10 | Shopify Admin API version the connector pins |
| ABOS_STRIPE_API_VERSION | 2026-10-28.endive | Stripe API version the connector pins |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHOPIFY_API_VERSION = "2026-10"
DEFAULT_STRIPE_API_VERSION = "2026-10-28.endive"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable to fix."""


@dataclass(frozen=True)
class Warehouse:
    """Where the data lives: one URL drives dlt, dbt, the insight readers and the delivery log."""

    url: str

    @property
    def kind(self) -> str:
        """"duckdb" or "postgres"."""
        return "duckdb" if self.url.startswith("duckdb:") else "postgres"

    @property
    def duckdb_path(self) -> Path:
        """The DuckDB file (duckdb:///relative/or/absolute/path)."""
        if self.kind != "duckdb":
            raise SettingsError(f"ABOS_WAREHOUSE_URL={self.redacted} is not a DuckDB URL")
        return Path(self.url.removeprefix("duckdb:///"))

    @property
    def redacted(self) -> str:
        """The URL with any password masked, safe for logs and metadata."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url


def parse_warehouse_url(url: str) -> Warehouse:
    """Check a warehouse URL and normalize the `postgres://` alias."""
    if url.startswith("duckdb:///") and len(url) > len("duckdb:///"):
        return Warehouse(url)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        parts = urlsplit(url)
        if not parts.hostname and "host=" not in parts.query:
            raise SettingsError(f"ABOS_WAREHOUSE_URL={url!r} names no host")
        if not parts.path.strip("/"):
            raise SettingsError(f"ABOS_WAREHOUSE_URL={Warehouse(url).redacted!r} names no database")
        return Warehouse("postgresql://" + url.split("://", 1)[1])
    raise SettingsError(
        f"ABOS_WAREHOUSE_URL={url!r} is not supported; use duckdb:///path/to/file.duckdb "
        "or postgresql://user:password@host:5432/database"
    )


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Warehouse
    dagster_home: Path
    workspaces_file: Path
    shopify_api_version: str
    stripe_api_version: str

    @property
    def sandbox_dir(self) -> Path:
        return self.home / "sandbox"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("ABOS_HOME") or ".abos").expanduser().absolute()
    warehouse = parse_warehouse_url(env.get("ABOS_WAREHOUSE_URL") or f"duckdb:///{home / 'warehouse.duckdb'}")
    return Settings(
        home=home,
        warehouse=warehouse,
        dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").expanduser().absolute(),
        workspaces_file=Path(env.get("ABOS_WORKSPACES") or PROJECT_ROOT / "workspaces.yaml").expanduser(),
        shopify_api_version=env.get("ABOS_SHOPIFY_API_VERSION") or DEFAULT_SHOPIFY_API_VERSION,
        stripe_api_version=env.get("ABOS_STRIPE_API_VERSION") or DEFAULT_STRIPE_API_VERSION,
    )
