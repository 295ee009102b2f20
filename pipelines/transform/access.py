"""Analyst access on Postgres: login roles that read only `marts` and `metrics`, only their workspaces.

How it works (docs/analysts.md has the operator's view):
- Analyst roles are members of the group role `abos_analysts`, which has SELECT on every table in
  `marts` and `metrics` (also on tables dbt creates later, through default privileges) and no
  access to the raw or staging schemas.
- `reference.analyst_grants` says which workspaces each analyst may see.
- Every table in `marts` and `metrics` has row-level security, forced even for its owner, with one
  policy: members of `abos_analysts` see the rows of their granted workspaces; other roles (the
  pipeline itself) see everything. dbt re-applies the policy after each rebuild through the
  `workspace_isolation()` post-hook, which calls `reference.apply_workspace_policy`.
"""

from __future__ import annotations

import secrets

import psycopg2
from psycopg2 import sql

from pipelines.settings import Settings, SettingsError

ANALYST_GROUP = "abos_analysts"
EXPOSED_SCHEMAS = ("marts", "metrics")
# Tables outside those schemas that an exposed view reads (a view reads with the analyst's rights):
# readable by the group under the same workspace policy. metrics.forecast_metrics reads
# insights.forecasts, which its dbt pre-hook exposes the same way (macros/insights_forecasts.sql).
READ_BY_VIEWS = ("insights.forecasts",)

ACCESS_OBJECTS = f"""
do $$ begin
    if not exists (select 1 from pg_roles where rolname = '{ANALYST_GROUP}') then
        create role {ANALYST_GROUP} nologin;
    end if;
end $$;
create schema if not exists reference;
create table if not exists reference.analyst_grants (
    role_name text not null,
    workspace_id text not null,
    granted_at timestamptz not null default now(),
    primary key (role_name, workspace_id)
);
revoke all on reference.analyst_grants from public;
-- Runs as its owner, so analysts learn their own workspaces without reading the grants table.
create or replace function reference.analyst_workspaces() returns setof text
    language sql stable security definer set search_path = pg_catalog
    as $fn$ select workspace_id from reference.analyst_grants where role_name = session_user $fn$;
create or replace function reference.apply_workspace_policy(target regclass) returns void
    language plpgsql as $fn$
begin
    if (select relkind from pg_class where oid = target) = 'v' then
        -- A view reads its tables with the querying role's rights, so their policies apply.
        execute format('alter view %s set (security_invoker = true)', target);
        return;
    end if;
    execute format('alter table %s enable row level security', target);
    execute format('alter table %s force row level security', target);
    execute format('drop policy if exists workspace_isolation on %s', target);
    execute format(
        'create policy workspace_isolation on %s using ('
        'not pg_has_role(current_user, %L, %L) or workspace_id in (select reference.analyst_workspaces()))',
        target, '{ANALYST_GROUP}', 'member');
end $fn$;
"""


class AccessError(RuntimeError):
    """Analyst access cannot be changed; the message says why."""


def _connect(settings: Settings):
    if settings.warehouse.kind != "postgres":
        raise SettingsError(
            "analyst roles need a Postgres warehouse: set ABOS_WAREHOUSE_URL=postgresql://... "
            f"(now {settings.warehouse.redacted}); DuckDB files have no roles"
        )
    conn = settings.warehouse.postgres_connection()
    conn.autocommit = False
    return conn


def _exposed_relations(cur) -> list[str]:
    """Tables and views in the exposed schemas that have a workspace_id column."""
    cur.execute(
        """
        select quote_ident(c.table_schema) || '.' || quote_ident(c.table_name)
        from information_schema.columns c
        where c.table_schema = any(%s) and c.column_name = 'workspace_id'
        order by 1
        """,
        (list(EXPOSED_SCHEMAS),),
    )
    return [row[0] for row in cur.fetchall()]


def secure_exposed_tables(cur) -> list[str]:
    """Create the access objects and apply the workspace policy to every exposed table."""
    cur.execute(ACCESS_OBJECTS)
    relations = _exposed_relations(cur)
    for relation in relations:
        cur.execute("select reference.apply_workspace_policy(%s::regclass)", (relation,))
    for table in READ_BY_VIEWS:
        cur.execute("select to_regclass(%s) is not null", (table,))
        if cur.fetchone()[0]:
            schema, name = table.split(".")
            cur.execute("select reference.apply_workspace_policy(%s::regclass)", (table,))
            cur.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema),
                                                                         sql.Identifier(ANALYST_GROUP)))
            cur.execute(sql.SQL("grant select on {}.{} to {}").format(sql.Identifier(schema), sql.Identifier(name),
                                                                      sql.Identifier(ANALYST_GROUP)))
    for schema in EXPOSED_SCHEMAS:
        cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), sql.Identifier(ANALYST_GROUP)))
        cur.execute(sql.SQL("grant select on all tables in schema {} to {}").format(
            sql.Identifier(schema), sql.Identifier(ANALYST_GROUP)))
        # Tables dbt creates later (as this role) are readable by the group too.
        cur.execute(sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(
            sql.Identifier(schema), sql.Identifier(ANALYST_GROUP)))
    return relations


def grant(settings: Settings, workspace_id: str, role: str, password: str | None = None) -> dict[str, object]:
    """Create or update login role `role` so it reads workspace `workspace_id` (and any already granted).

    Returns what was done; `password` is set (or generated) only when the role is created.
    """
    conn = _connect(settings)
    try:
        with conn.cursor() as cur:
            relations = secure_exposed_tables(cur)
            cur.execute("select 1 from pg_roles where rolname = %s", (role,))
            created = cur.fetchone() is None
            generated = None
            if created:
                generated = password or secrets.token_urlsafe(18)
                cur.execute(sql.SQL("create role {} login password %s").format(sql.Identifier(role)), (generated,))
            elif password:
                cur.execute(sql.SQL("alter role {} login password %s").format(sql.Identifier(role)), (password,))
            cur.execute(sql.SQL("grant {} to {}").format(sql.Identifier(ANALYST_GROUP), sql.Identifier(role)))
            cur.execute(
                "insert into reference.analyst_grants (role_name, workspace_id) values (%s, %s)"
                " on conflict do nothing",
                (role, workspace_id),
            )
            cur.execute("select workspace_id from reference.analyst_grants where role_name = %s order by 1", (role,))
            workspaces = [row[0] for row in cur.fetchall()]
        conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        raise AccessError(f"cannot grant {role!r} access to {workspace_id!r}: {exc.pgerror or exc}") from exc
    finally:
        conn.close()
    return {"role": role, "created": created, "password": generated if created and not password else None,
            "workspaces": workspaces, "tables": len(relations)}


def revoke(settings: Settings, workspace_id: str, role: str) -> dict[str, object]:
    """Take workspace `workspace_id` away from `role`; a role left with none loses access and is dropped."""
    conn = _connect(settings)
    try:
        with conn.cursor() as cur:
            cur.execute(ACCESS_OBJECTS)
            cur.execute("delete from reference.analyst_grants where role_name = %s and workspace_id = %s",
                        (role, workspace_id))
            cur.execute("select workspace_id from reference.analyst_grants where role_name = %s order by 1", (role,))
            remaining = [row[0] for row in cur.fetchall()]
            dropped = False
            cur.execute("select 1 from pg_roles where rolname = %s", (role,))
            if not remaining and cur.fetchone():
                cur.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(ANALYST_GROUP), sql.Identifier(role)))
                cur.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
                dropped = True
        conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        raise AccessError(f"cannot revoke {role!r} from {workspace_id!r}: {exc.pgerror or exc}") from exc
    finally:
        conn.close()
    return {"role": role, "workspaces": remaining, "dropped": dropped}
