"""The Postgres output of dbt's profile (dbt_project/profiles.yml): which `ABOS_DBT_PG_*` variable
carries which connection parameter, read both ways from one table.

`Warehouse.dbt_profile_env` writes the variables from the warehouse URL; `abos-dbt`'s look at the
catalog before a build (pipelines/transform/unchanged_views.py) connects with them, as dbt does. The
URL is read by libpq's own parser, the one the warehouse's connections use (`psycopg2.connect(url)`):
percent-encoded user names, passwords and database names are decoded, and `?host=` / `?port=` count.

This module imports neither Dagster nor the settings: `abos-dbt` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping

# (profile variable, libpq keyword, profiles.yml's default)
POSTGRES_PROFILE = (
    ("ABOS_DBT_PG_HOST", "host", "127.0.0.1"),
    ("ABOS_DBT_PG_PORT", "port", "5432"),
    ("ABOS_DBT_PG_USER", "user", "postgres"),
    ("ABOS_DBT_PG_PASSWORD", "password", ""),
    ("ABOS_DBT_PG_DATABASE", "dbname", "postgres"),
)


def postgres_profile_env(url: str) -> dict[str, str]:
    """The profile's variables for the Postgres warehouse at `url` (a `postgresql://` URL)."""
    from psycopg2.extensions import parse_dsn  # libpq's parser

    parameters = parse_dsn(url)
    return {variable: parameters.get(keyword) or default for variable, keyword, default in POSTGRES_PROFILE}


def postgres_connect_parameters(profile_env: Mapping[str, str]) -> dict[str, str]:
    """`psycopg2.connect`'s keywords for the connection the profile's variables name, as dbt makes it."""
    return {keyword: profile_env.get(variable, default) for variable, keyword, default in POSTGRES_PROFILE}
