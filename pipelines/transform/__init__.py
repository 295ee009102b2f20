"""Transform: the dbt project as Dagster assets. `dbt_env` turns the one warehouse URL into dbt's target."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipelines.settings import PROJECT_ROOT, Settings

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def dbt_env(settings: Settings) -> dict[str, str]:
    """Variables that `dbt_project/profiles.yml` reads to reach the warehouse in ABOS_WAREHOUSE_URL."""
    warehouse = settings.warehouse
    if warehouse.kind == "duckdb":
        return {"ABOS_DBT_TARGET": "duckdb", "ABOS_DBT_DUCKDB_PATH": str(warehouse.duckdb_path)}
    parts = urlsplit(warehouse.url)
    return {
        "ABOS_DBT_TARGET": "postgres",
        "ABOS_DBT_PG_HOST": parts.hostname or "127.0.0.1",
        "ABOS_DBT_PG_PORT": str(parts.port or 5432),
        "ABOS_DBT_PG_USER": unquote(parts.username or "postgres"),
        "ABOS_DBT_PG_PASSWORD": unquote(parts.password or ""),
        "ABOS_DBT_PG_DATABASE": parts.path.lstrip("/"),
    }


def manifest_path(project_dir: Path = DBT_PROJECT_DIR) -> Path:
    return project_dir / "target" / "manifest.json"
