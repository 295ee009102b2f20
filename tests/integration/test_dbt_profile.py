"""dbt's Postgres profile variables (pipelines/dbt_profile.py) name the connection the warehouse URL
names: what `Warehouse.dbt_profile_env` writes, `abos-dbt`'s catalog look (unchanged_views) and dbt
read back, and libpq (the warehouse's own connections) reads from the URL."""

from __future__ import annotations

import os
import uuid
from contextlib import closing
from urllib.parse import quote

import psycopg2
import pytest
from psycopg2.extensions import parse_dsn

from pipelines.dbt_profile import postgres_connect_parameters
from pipelines.settings import load_settings
from pipelines.transform.unchanged_views import _Catalog
from tests import pg

PASSWORD = "p@ss:w/rd%?#&= x"  # every character a URL gives a meaning to
KEYWORDS = ("host", "port", "user", "password", "dbname")


def profile_env(url: str, tmp_path) -> dict[str, str]:
    return load_settings({"ABOS_WAREHOUSE_URL": url, "ABOS_HOME": str(tmp_path)}).warehouse.dbt_profile_env()


@pytest.mark.parametrize("url", [
    f"postgresql://us%3Aer:{quote(PASSWORD, safe='')}@db.example:6543/my%20db%25",
    "postgresql://postgres@/warehouse?host=/var/run/postgresql&port=5433",
    "postgresql://postgres@[::1]/warehouse",
    "postgres://postgres@127.0.0.1/warehouse?sslmode=disable",
])
def test_the_profile_names_the_connection_libpq_reads_from_the_url(url, tmp_path):
    """libpq's own reading of the URL (parse_dsn) is the reference: the profile's variables, read back
    as dbt and the catalog look read them, give the same host, port, user, password and database."""
    expected = {"host": "127.0.0.1", "port": "5432", "user": "postgres", "password": "",
                **{key: value for key, value in parse_dsn(url).items() if key in KEYWORDS}}
    assert postgres_connect_parameters(profile_env(url, tmp_path)) == expected


def test_the_catalog_look_reaches_the_warehouses_database_by_its_profile(pg_admin_url, tmp_path):
    """A database whose name needs quoting in a URL, and a password full of URL delimiters (the test
    server trusts local connections, so only its decoding matters): the catalog look connects with
    the profile's variables to the database the warehouse's own connections reach."""
    name = f"abos_test_{os.getpid()}_{uuid.uuid4().hex[:6]} a/b%"
    admin = pg.with_database(pg_admin_url, "postgres")
    pg.create_database(admin, name)
    try:
        url = pg.with_database(admin, quote(name, safe="")).replace("@", f":{quote(PASSWORD, safe='')}@", 1)
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute("select current_database()")
            assert cursor.fetchone() == (name,)
        catalog = _Catalog.open(profile_env(url, tmp_path))
        with closing(catalog):
            assert catalog._rows("select current_database()") == [(name,)]
    finally:
        pg.drop_database(admin, name)
