"""A PostgreSQL server for the tests: ABOS_TEST_PG_URL, the local one, or a throwaway one we start.

Order of preference:
1. `ABOS_TEST_PG_URL` if set (it must work: no fallback hides a wrong setting);
2. the server at postgresql://postgres@127.0.0.1:5432/postgres;
3. a throwaway cluster started from the local PostgreSQL binaries (initdb/pg_ctl), removed at exit.
If none works, the tests fail (they never skip) with instructions.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg2

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO = (
    "The Postgres tests need a server. Either start one (Debian: `apt-get install postgresql` then "
    "`pg_ctlcluster $(ls /etc/postgresql) main start`), or point ABOS_TEST_PG_URL at one, e.g. "
    "ABOS_TEST_PG_URL=postgresql://user:password@host:5432/postgres (the user must be able to CREATE DATABASE)."
)


def can_connect(url: str) -> str | None:
    """None if `url` accepts connections, else the reason."""
    try:
        psycopg2.connect(url, connect_timeout=3).close()
        return None
    except psycopg2.Error as exc:
        return str(exc).strip()


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayServer:
    """A temporary PostgreSQL cluster on a free loopback port (run as user postgres when we are root)."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("no local PostgreSQL binaries (initdb, pg_ctl) to start a throwaway server")
        self.dir = Path(tempfile.mkdtemp(prefix="abos-pg-"))
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def start(self) -> str:
        data = self.dir / "data"
        self._run(self.initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run(self.pg_ctl, "-D", str(data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -h 127.0.0.1", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def server_url() -> tuple[str, ThrowawayServer | None]:
    """An admin URL of a working server, and the throwaway server to stop afterwards (if any)."""
    explicit = os.environ.get("ABOS_TEST_PG_URL")
    if explicit:
        reason = can_connect(explicit)
        if reason:
            raise RuntimeError(f"ABOS_TEST_PG_URL={explicit} does not accept connections: {reason}\n{HOW_TO}")
        return explicit, None
    if can_connect(DEFAULT_URL) is None:
        return DEFAULT_URL, None
    try:
        server = ThrowawayServer()
        return server.start(), server
    except (RuntimeError, subprocess.CalledProcessError, KeyError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise RuntimeError(f"no PostgreSQL at {DEFAULT_URL} and no throwaway server: {detail}\n{HOW_TO}") from exc


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + database + (f"?{query}" if query else "")


def create_database(admin_url: str, name: str) -> str:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
        cur.execute(f'create database "{name}"')
    conn.close()
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{name}" with (force)')
    conn.close()
