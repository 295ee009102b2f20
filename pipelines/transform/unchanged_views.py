"""The staging and quarantine views left out of a refresh's `dbt build` while their definition is the
deployed one (docs/performance.md, "dbt after a small change: the unchanged views left out of the build").

A view holds no data, and dbt's view materialization already keeps a view whose `create view`
statement is the deployed one (dbt_project/macros/deploy_when_changed.sql: the fingerprint of the
compiled statement, stored as the view's comment). Yet a kept view is still a dbt node: compiled (its
`conformed_source` asks the catalog for the raw table's columns), its fingerprint looked up, a
transaction opened and committed, dbt's per-node events: ≈ 30 ms of dbt's Python per view, 30 views a
refresh. So the refresh's whole-project build leaves them out of dbt's selection when it can tell,
without compiling them, that every one of them would be kept:

- the **key** of what a view's compiled statement depends on is the one the last build that deployed
  them all was run with: the dbt project's files (models, macros, YAML, `dbt_project.yml`,
  `profiles.yml`), dbt's and its adapters' versions, the profile's variables (`ABOS_DBT_*`, which name
  the warehouse and its target) and every variable the project reads with `env_var`, and the catalog
  `conformed_source` reads: for each source table a left-out view reads, whether it exists and which of
  its declared columns it has (what `conformed_source` compiles from). Which sources those are, and
  their declared columns, come from the parse of the build that recorded the key (dbt's
  `partial_parse.msgpack` in its target folder), and stand while the project's files are the same;
  without that parse, every declared source table and all its column names, as before;
- the **views in the warehouse** are the ones that build left: every view carrying a deploy fingerprint
  (`abos-deploy-`), with the same comment. A view dropped, re-created by hand or by another project,
  or a warehouse dropped or restored elsewhere fails this.

Both hold only if every staging and quarantine view would compile to the statement whose fingerprint it
carries, so the build's result is the same as with them kept. Otherwise (a deployment that edits, adds
or removes a model or macro, a raw table a view reads or a declared column of one that appeared or
went, a new warehouse or Postgres schema, `--full-refresh`, a selection or `--vars` of the caller's)
they are built as before, and a build that
built them all records the key and the views it left (a file beside dbt's parse cache, one per
warehouse). Their data tests still run every time: the build then selects tests directly
(`fqn:*`, the build's selection with or without dagster-dbt's `--select`, matches tests as well as
models; with `DBT_INDIRECT_SELECTION=empty` the `--exclude` of the views leaves out the views alone,
where the default `cautious` would leave their tests out with them), and every model and test reads the view by name. Views with hooks other
than `analyze_table` (which renders nothing for a view) are never left out: `forecast_metrics`'
hooks create and grant the table it reads (tests/integration/test_unchanged_views.py checks the rule
against the project).

This module imports neither Dagster nor the settings: `abos-dbt` runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pipelines.dbt_profile import postgres_connect_parameters

# What is left out: the views of the staging and quarantine schemas, as dbt selectors.
LEFT_OUT_SCHEMAS = ("staging", "quarantine")
LEFT_OUT = tuple(f"config.materialized:view,config.schema:{schema}" for schema in LEFT_OUT_SCHEMAS)
# The build commands whose views may be left out: the refresh's whole-project build, as `BUILD` runs it
# by hand or from the benchmark (no selection) or through dagster-dbt (`--select fqn:*`, every asset).
_WHOLE = ("--select", "fqn:*")
_GLOBAL_FLAGS = {"--no-use-color"}  # dagster-dbt's, before the command
_SAFE_FLAGS = {"--exclude-resource-type": "unit_test", "--no-write-json": None}
FINGERPRINT_PREFIX = "abos-deploy-"  # deploy_when_changed.sql's `deploy_fingerprint`
# Where the state is kept: dbt's target folder, beside the parse cache (one file per warehouse).
STATE_DIR = ("target", "unchanged_views")
_PROJECT_SKIP = {"target", "logs", "dbt_packages", ".user.yml"}
_PACKAGES = ("dbt-core", "dbt-adapters", "dbt-duckdb", "dbt-postgres")
_ENV_VAR = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")


def left_out(node: Mapping[str, Any]) -> bool:
    """Whether the manifest's `node` is one of the views `LEFT_OUT` selects."""
    config = node.get("config") or {}
    return (node.get("resource_type") == "model" and config.get("materialized") == "view"
            and config.get("schema") in LEFT_OUT_SCHEMAS)


def whole_build(args: Sequence[str]) -> bool:
    """Whether `args` are the refresh's whole-project `dbt build` (models and data tests, no selection,
    no full refresh, no variables): the only command whose views are left out."""
    args = list(args)
    while args and args[0] in _GLOBAL_FLAGS:
        args = args[1:]
    if not args or args[0] != "build":
        return False
    rest, i = args[1:], 0
    while i < len(rest):
        flag = rest[i]
        if tuple(rest[i:i + 2]) == _WHOLE:
            i += 2
        elif flag in _SAFE_FLAGS and _SAFE_FLAGS[flag] is None:
            i += 1
        elif flag in _SAFE_FLAGS and i + 1 < len(rest) and rest[i + 1] == _SAFE_FLAGS[flag]:
            i += 2
        else:
            return False
    return True


MARKER = "unchanged_views_left_out"  # in the invocation's target folder, when its build left the views out


def left_out_by(target_path: Path) -> bool:
    """Whether the build whose target folder is `target_path` left the views out (it says so before dbt
    starts, so by dbt's first event)."""
    return (target_path / MARKER).exists()


def run_build(run: Callable[[list[str], dict[str, str]], int], args: Sequence[str], env: Mapping[str, str],
              profile_env: Mapping[str, str], project_dir: Path) -> int:
    """`run(args, env)` (dbt's command line after the executable, its environment), with the unchanged
    views left out when `args` are the whole-project build; its exit code. Call under the warehouse's lock."""
    views = UnchangedViews(profile_env, project_dir, env) if whole_build(args) else None
    more_args, more_env = views.plan() if views else ([], {})
    if views:
        # the dbt asset yields the left-out views' outputs before dbt's first event (pipelines/transform/assets.py);
        # a target folder used again (`abos dbt build` by hand: the project's) loses an earlier build's marker
        marker = project_dir / env.get("DBT_TARGET_PATH", "target") / MARKER
        if views.left_out:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(" ".join(LEFT_OUT))
        else:
            marker.unlink(missing_ok=True)
    code = run([*args, *more_args], {**env, **more_env})
    if views:
        views.done(code)
    return code


class UnchangedViews:
    """One whole-project build's decision: `plan` before dbt runs (under the warehouse's lock), `done` after."""

    def __init__(self, profile_env: Mapping[str, str], project_dir: Path, env: Mapping[str, str]) -> None:
        self.profile_env = dict(profile_env)
        # the warehouse and target the profile names: a digest of it keys the record's file and its contents
        # (the profile holds the Postgres password, and the record is a file)
        self.profile = _digest({k: v for k, v in profile_env.items() if k.startswith("ABOS_DBT_")})
        self.project_dir = project_dir
        self.env = env
        self.key: str | None = None
        self.left_out = False
        self.parts: dict[str, Any] = {}
        self.project = ""
        # per declared source table ("schema.table"): its column names, lower case and sorted, or None when
        # it does not exist, as the catalog was before dbt ran
        self.columns: dict[str, list[str] | None] = {}

    def _parts(self, reads: list[list[Any]] | None) -> dict[str, Any]:
        """The key's parts: the project, the profile, and what `conformed_source` compiles the views from.
        With `reads` ([schema, table, declared columns] of each source table a left-out view reads):
        whether each exists and which of its declared columns it has (a column the project does not
        declare, or a table no view reads, such as the insights stage's, changes no view's statement);
        without: every declared source table's column names."""
        sources: dict[str, Any] = self.columns
        if reads is not None and all(f"{schema}.{table}" in self.columns for schema, table, _ in reads):
            sources = {}
            for schema, table, declared in reads:
                present = self.columns[f"{schema}.{table}"]
                sources[f"{schema}.{table}"] = None if present is None else sorted(set(present) & set(declared))
            return {"project": self.project, "profile": self.profile, "reads": sources}
        return {"project": self.project, "profile": self.profile, "sources": sources}

    def plan(self) -> tuple[list[str], dict[str, str]]:
        """The arguments and variables to add to the build: the views left out when their key and the
        warehouse's views are those the last build recorded, nothing otherwise."""
        catalog = _Catalog.open(self.profile_env)
        if catalog is None:
            return [], {}
        recorded = self._recorded() or {}
        with contextlib.closing(catalog):
            self.project = project_digest(self.project_dir, self.env)
            self.columns = catalog.source_columns(declared_sources(self.project_dir))
            views = catalog.deployed_views()
        # the sources the views read, as the recording build's parse found them, while the files are the same
        reads = recorded.get("reads") if (recorded.get("parts") or {}).get("project") == self.project else None
        self.parts = self._parts(reads)
        self.key = _digest(self.parts)
        why = ("no build recorded them" if not recorded else
               _changed(recorded.get("parts") or {}, self.parts) if recorded.get("key") != self.key else
               "the warehouse's views are not those recorded" if recorded.get("views") != views or not views else None)
        if why:
            print(f"[abos] the staging and quarantine views are built: {why}", file=sys.stderr, flush=True)
            return [], {}
        print("[abos] the staging and quarantine views are left out: unchanged since the last build", file=sys.stderr,
              flush=True)
        self.left_out = True
        return ["--exclude", *LEFT_OUT], {"DBT_INDIRECT_SELECTION": "empty"}

    def done(self, code: int) -> None:
        """After dbt: a successful build that built the views records its key and the views it left;
        a failed one forgets the record (its views may be half deployed)."""
        if self.left_out:
            return
        path = self.state_path()
        if code != 0 or self.key is None:
            path.unlink(missing_ok=True)
            return
        catalog = _Catalog.open(self.profile_env)
        if catalog is None:
            return
        with contextlib.closing(catalog):
            views = catalog.deployed_views()
        # the key by the sources the views read, as this build's parse of the project found them
        reads = views_reads(self.project_dir / self.env.get("DBT_TARGET_PATH", "target") / PARTIAL_PARSE)
        self.parts = self._parts(reads)
        key = _digest(self.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}")
        # the key's parts too, for an operator asking why a build did not leave the views out
        temporary.write_text(json.dumps({"key": key, "views": views, "parts": self.parts, "reads": reads}))
        os.replace(temporary, path)

    def state_path(self) -> Path:
        return self.project_dir.joinpath(*STATE_DIR, f"{self.profile[:16]}.json")

    def _recorded(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_path().read_text())
        except (FileNotFoundError, ValueError):
            return None


def project_digest(project_dir: Path, env: Mapping[str, str]) -> str:
    """What the project compiles from: its files, dbt's packages' versions and the variables it reads."""
    hasher = hashlib.sha256()
    names: set[str] = set()
    for path in sorted(p for p in project_dir.rglob("*") if p.is_file()
                       and p.relative_to(project_dir).parts[0] not in _PROJECT_SKIP):
        data = path.read_bytes()
        hasher.update(f"{path.relative_to(project_dir).as_posix()}\0{len(data)}\0".encode())
        hasher.update(data)
        names.update(_ENV_VAR.findall(data.decode("utf-8", errors="replace")))
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    hasher.update(json.dumps({"versions": versions, "env": {name: env.get(name) for name in sorted(names)}},
                             sort_keys=True).encode())
    return hasher.hexdigest()


PARTIAL_PARSE = "partial_parse.msgpack"  # dbt's parse of the project, in its target folder


def views_reads(parse: Path) -> list[list[Any]] | None:
    """[schema, table, declared column names (lower case, sorted)] of every source table a left-out view
    reads (its `depends_on`: `conformed_source` calls `source()`), from dbt's parse of the project at
    `parse` (`partial_parse.msgpack`, which dbt writes, or checks against the project's files, at every
    invocation); None without it, or when no left-out view is found in it (not as dbt 1.11 writes it)."""
    try:
        import msgpack  # dbt's own dependency: it writes the file with it
    except ImportError:
        return None
    try:
        manifest = msgpack.unpackb(parse.read_bytes(), raw=False, strict_map_key=False)
        views = [node for node in manifest["nodes"].values() if left_out(node)]
        found = set()
        for node in views:
            for parent in node["depends_on"]["nodes"]:
                if parent.startswith("source."):
                    source = manifest["sources"][parent]
                    found.add((str(source["schema"]), str(source["identifier"]),
                               tuple(sorted(str(column["name"]).lower() for column in source["columns"].values()))))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
        return None
    if not views:
        return None
    return [[schema, table, list(columns)] for schema, table, columns in sorted(found)]


def declared_sources(project_dir: Path) -> list[tuple[str, str]]:
    """(schema, table) of every source table the project's YAML declares, as dbt resolves them
    (a source's schema defaults to its name, a table's identifier to its name)."""
    found = set()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: the Python parser takes ≈ 0.3 CPU s
    for path in sorted((project_dir / "models").rglob("*.yml")):
        text = path.read_text()
        if not re.search(r"^sources\s*:", text, re.MULTILINE):
            continue
        for source in (yaml.load(text, Loader=loader) or {}).get("sources") or []:
            schema = source.get("schema") or source["name"]
            for table in source.get("tables") or []:
                found.add((str(schema), str(table.get("identifier") or table["name"])))
    return sorted(found)


def _changed(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What differs between the recorded key's parts and these, in words (the build's stderr)."""
    if recorded.get("project") != now.get("project"):
        return "the project, dbt or a variable the project reads changed"
    if recorded.get("profile") != now.get("profile"):
        return "the profile changed"
    before, after = recorded.get("reads", recorded.get("sources")) or {}, now.get("reads", now.get("sources")) or {}
    tables = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    return f"a raw table the views read, or its columns, changed: {', '.join(tables[:5]) or '?'}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class _Catalog:
    """The warehouse's catalog as dbt's profile reaches it (DuckDB read-only, or Postgres)."""

    def __init__(self, connection: Any, kind: str) -> None:
        self.connection, self.kind = connection, kind

    @classmethod
    def open(cls, profile_env: Mapping[str, str]) -> _Catalog | None:
        """None when there is no warehouse yet (a DuckDB file not created): nothing to leave out."""
        if profile_env.get("ABOS_DBT_TARGET", "duckdb") == "duckdb":
            import duckdb

            path = Path(profile_env.get("ABOS_DBT_DUCKDB_PATH", ""))
            if not path.is_file():
                return None
            return cls(duckdb.connect(str(path), read_only=True), "duckdb")
        import psycopg2

        return cls(psycopg2.connect(**postgres_connect_parameters(profile_env)), "postgres")

    def close(self) -> None:
        self.connection.close()

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.kind == "duckdb":
            return self.connection.execute(query).fetchall()
        with self.connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()

    def source_columns(self, sources: list[tuple[str, str]]) -> dict[str, list[str] | None]:
        """Per declared source table: its column names, lower case and sorted (`conformed_source`'s
        view of it), or None when the table does not exist."""
        schemas = ", ".join(sorted({f"'{schema.lower()}'" for schema, _ in sources})) or "''"
        rows = self._rows("select table_schema, table_name, column_name from information_schema.columns "
                          f"where table_catalog = current_database() and lower(table_schema) in ({schemas})")
        found: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in rows:
            found.setdefault((schema.lower(), table.lower()), []).append(column.lower())
        return {f"{schema}.{table}": sorted(found[(schema.lower(), table.lower())])
                if (schema.lower(), table.lower()) in found else None for schema, table in sources}

    def deployed_views(self) -> list[list[str]]:
        """[schema, name, comment] of every view carrying a deploy fingerprint, sorted."""
        if self.kind == "duckdb":
            query = ("select schema_name, view_name, comment from duckdb_views() "
                     "where database_name = current_database() and not internal "
                     f"and comment like '{FINGERPRINT_PREFIX}%'")
        else:
            query = ("select n.nspname, c.relname, obj_description(c.oid, 'pg_class') from pg_class as c "
                     "inner join pg_namespace as n on n.oid = c.relnamespace where c.relkind = 'v' "
                     f"and obj_description(c.oid, 'pg_class') like '{FINGERPRINT_PREFIX}%'")
        return sorted([str(value) for value in row] for row in self._rows(query))
