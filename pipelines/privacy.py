"""Privacy requests: redact a customer, export what the warehouse holds on them, erase a shop (docs/privacy.md).

`redact` anonymizes one customer of one workspace everywhere the project keeps data: every table of
the warehouse (raw, dlt staging, dbt models, quarantine, the webhook inbox, insights), the report,
outbox and export files, and dlt's completed load packages. It works on what the data says, not on
a list of known columns, so a table or column added later is covered:

- the customer's rows are those of the workspace in which a text column holds one of their keys
  (customer ids, order ids named by the request, e-mail addresses), alone or quoted inside JSON;
- their personal values are what those rows hold in personal columns (names, phone, address parts);
- in those rows every e-mail of the customer becomes one random pseudonym per address, and every
  personal value, alone or inside JSON, becomes NULL; free text loses them too.

Aggregates stay correct: ids are kept, and an e-mail maps to one pseudonym everywhere, so a guest
and an account with the same address still make one person; the person ids dbt derived from the
e-mail (md5 of "email:<address>") are replaced by those of the pseudonym, which is what a rebuild
would compute. Each request is written to `privacy.audit_log` (without the personal values).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipelines import inbox
from pipelines.ask.chart import folder_of as ask_charts
from pipelines.settings import Settings
from pipelines.warehouse import Statements

AUDIT_TABLE = "privacy.audit_log"
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
TEXT_TYPES = ("varchar", "text", "character varying", "json", "jsonb")
# Columns that hold a person's name, phone or address part, by their name in any table.
PERSONAL_COLUMN = re.compile(
    r"(^|_)(first_name|last_name|display_name|customer_name|business_name|individual_name|phone|customer_phone"
    r"|company)$|address.*(line1|line2|address1|address2|city|zip|postal_code|province|province_code|state"
    r"|name|phone|company)$")
EMAIL_COLUMN = re.compile(r"email")
TEXT_FILE_SUFFIXES = (".html", ".txt", ".json", ".eml", ".md", ".csv")
SKIPPED_SCHEMAS = ("information_schema", "pg_catalog", "privacy")


@dataclass
class Subject:
    """Whom a request is about: their keys, and the personal values found in their rows."""

    workspace_id: str
    ids: set[str] = field(default_factory=set)  # customer ids and order ids, as stored
    emails: set[str] = field(default_factory=set)  # lower-cased, trimmed
    values: set[str] = field(default_factory=set)  # names, phones, address parts, casefolded
    aliases: set[str] = field(default_factory=set)  # the pseudonyms their e-mails are replaced with

    @property
    def keys(self) -> list[str]:
        """What marks a row as theirs; a pseudonym too, as a row may already carry one mid-redaction."""
        return sorted({key.lower() for key in self.ids} | self.emails | self.aliases)

    @property
    def reference(self) -> str:
        """How the audit log names the subject: their ids, never an e-mail."""
        return ",".join(sorted(self.ids)) or "(e-mail only)"


@dataclass(frozen=True)
class Table:
    name: str  # schema.table, quoted
    columns: dict[str, str]  # text column -> its type

    @property
    def persons(self) -> bool:
        return "person_id" in self.columns


def _tables(statements: Statements) -> list[Table]:
    """Every base table with a workspace_id column, and its text columns."""
    rows = statements.execute(
        "select c.table_schema, c.table_name, c.column_name, lower(c.data_type) from information_schema.columns c"
        " join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name"
        " and t.table_catalog = c.table_catalog"
        " where t.table_type = 'BASE TABLE' and t.table_catalog = current_database()"
        " order by c.table_schema, c.table_name, c.ordinal_position")
    found: dict[tuple[str, str], dict[str, str]] = {}
    for schema, table, column, kind in rows:
        if schema in SKIPPED_SCHEMAS or table.startswith("_dlt"):
            continue
        found.setdefault((schema, table), {})[column] = kind
    return [Table(f'"{schema}"."{table}"', {c: k for c, k in columns.items() if k in TEXT_TYPES})
            for (schema, table), columns in found.items() if "workspace_id" in columns]


def _owned(table: Table, subject: Subject) -> tuple[str, list[str]]:
    """The SQL condition for the subject's rows of `table`, and its parameters.

    A row's text columns are joined into one lower-cased string, "|a|b|c|", once per row; a key
    marks the row when it is a whole column ("|key|") or a quoted string inside JSON.
    """
    columns = [c for c in table.columns if c != "workspace_id"]
    keys = subject.keys
    if not columns or not keys:
        return "false", []
    joined = "'|' || concat_ws('|', " + ", ".join(f'trim(lower(cast("{c}" as text)))' for c in columns) + ") || '|'"
    conditions = " or ".join("strpos(joined, %s) > 0" for _ in range(2 * len(keys)))
    params = [piece for key in keys for piece in (f"|{key}|", json.dumps(key))]
    return (f"workspace_id = %s and exists (select 1 from (select {joined} as joined) as row_text "
            f"where {conditions})"), [subject.workspace_id, *params]


ROW_ID = {"duckdb": "rowid", "postgres": "ctid"}  # a row's physical id, to update exactly the rows read


def _owned_rows(statements: Statements, table: Table, subject: Subject,
                columns: list[str] | None = None) -> list[tuple]:
    """The subject's rows of `table`: (row id, the columns as text...)."""
    condition, params = _owned(table, subject)
    if condition == "false":
        return []
    columns = columns if columns is not None else [c for c in table.columns if c != "workspace_id"]
    selected = ", ".join([ROW_ID[statements.kind], *(f'cast("{c}" as text)' for c in columns)])
    return statements.execute(f"select {selected} from {table.name} where {condition}", params)


def _person_id(email: str) -> str:
    """dbt's person id for an e-mail (int_orders_identified: md5 of "email:<address>")."""
    return hashlib.md5(f"email:{email}".encode()).hexdigest()


def find_subject(statements: Statements, tables: list[Table], workspace_id: str, customer: str,
                 orders: list[str] = ()) -> Subject:
    """The subject named by a customer id (Shopify global or numeric id, Stripe id) or an e-mail."""
    subject = Subject(workspace_id)
    customer = customer.strip()
    if "@" in customer:
        subject.emails.add(customer.lower())
    elif customer.isdigit():
        subject.ids.add(f"gid://shopify/Customer/{customer}")
    else:
        subject.ids.add(customer)
    subject.ids.update(f"gid://shopify/Order/{order}" if str(order).isdigit() else str(order) for order in orders)
    # Two rounds: an id leads to e-mails (the customer's, their orders'), an e-mail to more ids.
    for _ in range(2):
        for table in tables:
            id_columns = [c for c in table.columns if c in ("id", "customer_id", "customer")
                          and "customer" in (c + table.name)]
            email_columns = [c for c in table.columns if EMAIL_COLUMN.search(c)]
            if not (id_columns or email_columns):
                continue
            for row in _owned_rows(statements, table, subject, [*id_columns, *email_columns]):
                subject.ids.update(v for v in row[1:len(id_columns) + 1]
                                   if v and v.startswith(("gid://shopify/Customer/", "cus_")))
                subject.emails.update(v.strip().lower() for v in row[len(id_columns) + 1:] if v and "@" in v)
    for table in tables:
        personal = _personal_columns(table)
        if personal:
            for row in _owned_rows(statements, table, subject, personal):
                found = dict(zip(personal, row[1:]))
                subject.values.update(v.strip().casefold() for v in found.values() if v is not None and v.strip())
                first, last = found.get("first_name"), found.get("last_name")
                if first and last:  # free text names people in full
                    subject.values.add(f"{first.strip()} {last.strip()}".casefold())
    # Codes of two letters (a province, a state) are nulled in their own columns, but too short to be
    # recognised elsewhere: "CA" is also a country.
    subject.values = {value for value in subject.values if len(value) >= 3 and value not in ("none", "null")}
    return subject


def _personal_columns(table: Table) -> list[str]:
    return [c for c in table.columns if PERSONAL_COLUMN.search(c) or (c == "name" and "customer" in table.name)]


class Scrubber:
    """Replaces a subject's e-mails by pseudonyms and removes their personal values from one value."""

    def __init__(self, subject: Subject, pseudonyms: dict[str, str]):
        self.pseudonyms = pseudonyms
        self.values = subject.values
        # In free text only what cannot be part of ordinary words or numbers: e-mails, and values
        # of four or more characters with a letter (a name, a street; not a zip code alone).
        words = [v for v in subject.values if len(v) >= 4 and re.search(r"[^\W\d_]", v)]
        found = sorted([*pseudonyms, *words], key=len, reverse=True)
        self._inline = re.compile("|".join(rf"\b{re.escape(v)}\b" for v in found), re.IGNORECASE) if found else None

    def value(self, value: Any) -> Any:
        """A JSON value, a plain string, or anything else (returned as it is)."""
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if not isinstance(value, str):
            return value
        folded = value.strip().casefold()
        if folded in self.pseudonyms:
            return self.pseudonyms[folded]
        if folded in self.values:
            return None
        if value[:1] in "{[":
            try:
                return json.dumps(self.value(json.loads(value)), ensure_ascii=False)
            except ValueError:
                pass
        return self.text(value)

    def text(self, text: str) -> str:
        """Free text with e-mails replaced and personal values cut out."""
        if self._inline is None:
            return text
        return self._inline.sub(lambda m: self.pseudonyms.get(m.group(0).casefold(), "[redacted]"), text)


def _redact_tables(statements: Statements, tables: list[Table], subject: Subject,
                   scrubber: Scrubber) -> Counter:
    """Rewrite the subject's rows in every table, one update per row; returns changed values per table."""
    changed: Counter = Counter()
    renamed = {_person_id(email): _person_id(pseudonym) for email, pseudonym in scrubber.pseudonyms.items()}
    for table in tables:
        columns = [c for c in table.columns if c != "workspace_id"]
        personal = set(_personal_columns(table))
        for row in _owned_rows(statements, table, subject, columns):
            sets = {}
            for column, old in zip(columns, row[1:]):
                new = None if column in personal else scrubber.value(old)
                if old is not None and new != old:
                    sets[column] = new
            if sets:
                assignments = ", ".join(f'"{c}" = cast(%s as {table.columns[c]})' for c in sets)
                statements.execute(f"update {table.name} set {assignments} where {ROW_ID[statements.kind]} = "
                                   f"cast(%s as {'tid' if statements.kind == 'postgres' else 'bigint'})",
                                   [*sets.values(), row[0]])
                changed[table.name] += len(sets)
        if table.persons:
            for old, new in renamed.items():
                statements.execute(f"update {table.name} set person_id = %s where workspace_id = %s "
                                   "and person_id = %s", [new, subject.workspace_id, old])
    return changed


def _home_roots(settings: Settings, workspace_id: str) -> list[Path]:
    """The folders of the workspace's files: reports, outbox, exports and the charts of answers to questions."""
    return [settings.home / "reports" / workspace_id, settings.outbox_dir / workspace_id,
            exports_dir(settings, workspace_id), ask_charts(settings.home) / workspace_id]


def _home_files(settings: Settings, workspace_id: str) -> list[Path]:
    """The files a request must look at (charts are images of aggregates: a customer's request leaves them)."""
    roots = _home_roots(settings, workspace_id)
    return [path for root in roots if root.is_dir() for path in sorted(root.rglob("*")) if path.is_file()]


def exports_dir(settings: Settings, workspace_id: str) -> Path:
    return settings.home / "privacy" / "exports" / workspace_id


def _redact_files(settings: Settings, subject: Subject, scrubber: Scrubber) -> int:
    """Scrub text files; delete exports about the subject and dlt's completed load packages."""
    from pipelines.ingest.pipeline import pipeline_name

    touched = 0
    keys = [key.encode() for key in subject.keys]
    for path in _home_files(settings, subject.workspace_id):
        if path.is_relative_to(exports_dir(settings, subject.workspace_id)):
            if any(key in path.read_bytes().lower() for key in keys):
                path.unlink()
                touched += 1
        elif path.suffix in TEXT_FILE_SUFFIXES:
            text = path.read_text(errors="replace")
            scrubbed = scrubber.text(text)
            if scrubbed != text:
                partial = path.with_name(f".{path.name}.partial")
                partial.write_text(scrubbed)
                partial.replace(path)
                touched += 1
    # Completed load packages are dlt's history of what it loaded: copies of raw rows, not needed again.
    for source in ("shopify", "stripe"):
        loaded = settings.home / "dlt" / pipeline_name(source, subject.workspace_id) / "load" / "loaded"
        for package in (sorted(loaded.iterdir()) if loaded.is_dir() else []):
            shutil.rmtree(package)
            touched += 1
    return touched


def compact(settings: Settings) -> None:
    """Rewrite a DuckDB warehouse file, so no page of it still holds values an update replaced."""
    if settings.warehouse.kind != "duckdb":
        return  # Postgres: VACUUM after the transaction (see redact)
    path = settings.warehouse.duckdb_path
    fresh = path.with_name(path.name + ".compacting")
    fresh.unlink(missing_ok=True)
    with settings.warehouse.write_lock():
        with duckdb.connect() as conn:
            conn.execute(f"attach '{path}' as old (read_only)")
            conn.execute(f"attach '{fresh}' as fresh")
            conn.execute("copy from database old to fresh")
        fresh.replace(path)
        Path(f"{path}.wal").unlink(missing_ok=True)


def _vacuum(settings: Settings, tables: list[str]) -> None:
    """Postgres keeps replaced row versions until a vacuum: rewrite the tables that changed."""
    conn = settings.warehouse.postgres_connection()
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            for table in tables:
                cursor.execute(f"vacuum full {table}")
    finally:
        conn.close()


def _audit(settings: Settings, entry: dict[str, Any]) -> None:
    settings.warehouse.upsert(AUDIT_TABLE, pd.DataFrame([entry]), key=["audit_id"])


def redact(settings: Settings, workspace_id: str, customer: str, *, orders: list[str] = (),
           request: str = "cli", delivery_id: str | None = None) -> dict[str, Any]:
    """Anonymize one customer of one workspace everywhere (module docstring); returns the audit entry."""
    requested = datetime.now(timezone.utc)
    warehouse = settings.warehouse
    with warehouse.transaction() as statements:
        tables = _tables(statements)
        subject = find_subject(statements, tables, workspace_id, customer, orders)
        pseudonyms = {email: f"redacted-{secrets.token_hex(8)}@redacted.invalid" for email in subject.emails}
        subject.aliases = set(pseudonyms.values())
        scrubber = Scrubber(subject, pseudonyms)
        changed = _redact_tables(statements, tables, subject, scrubber)
    files = _redact_files(settings, subject, scrubber)
    if changed:
        compact(settings) if settings.warehouse.kind == "duckdb" else _vacuum(settings, sorted(changed))
    entry = {"audit_id": secrets.token_hex(12), "workspace_id": workspace_id, "action": "redact", "request": request,
             "delivery_id": delivery_id, "subject": subject.reference, "requested_at": requested,
             "completed_at": datetime.now(timezone.utc), "found": bool(subject.ids or subject.emails),
             "values_changed": sum(changed.values()), "tables_changed": len(changed), "files_changed": files,
             "detail": json.dumps(dict(changed), sort_keys=True)}
    _audit(settings, entry)
    return entry


def export(settings: Settings, workspace_id: str, customer: str, *, orders: list[str] = (),
           request: str = "cli", delivery_id: str | None = None) -> Path:
    """customers/data_request: every row the warehouse holds on the customer, as one JSON file."""
    requested = datetime.now(timezone.utc)
    warehouse = settings.warehouse
    held: dict[str, list[dict[str, Any]]] = {}
    with warehouse.transaction() as statements:
        tables = _tables(statements)
        subject = find_subject(statements, tables, workspace_id, customer, orders)
        for table in tables:
            condition, params = _owned(table, subject)
            if condition == "false":
                continue
            rows = statements.execute(f"select * from {table.name} where {condition}", params)
            if rows:
                held[table.name.replace('"', "")] = [dict(zip(statements.columns, row)) for row in rows]
    folder = exports_dir(settings, workspace_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{requested:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps({"workspace_id": workspace_id, "customer": customer,
                                "exported_at": requested.isoformat(), "tables": held}, indent=2, default=str))
    _audit(settings, {"audit_id": secrets.token_hex(12), "workspace_id": workspace_id, "action": "export",
                      "request": request,
                      "delivery_id": delivery_id, "subject": subject.reference, "requested_at": requested,
                      "completed_at": datetime.now(timezone.utc), "found": bool(held), "values_changed": 0,
                      "tables_changed": 0, "files_changed": 1, "detail": json.dumps({"export": path.name})})
    return path


def erase_workspace(settings: Settings, workspace_id: str, *, request: str = "shop/redact",
                    delivery_id: str | None = None) -> dict[str, Any]:
    """shop/redact: delete every row and file of the workspace (the audit log keeps the request)."""
    requested = datetime.now(timezone.utc)
    warehouse = settings.warehouse
    deleted: Counter = Counter()
    with warehouse.transaction() as statements:
        for table in _tables(statements):
            count = statements.execute(f"select count(*) from {table.name} where workspace_id = %s",
                                       [workspace_id])[0][0]
            if count:
                statements.execute(f"delete from {table.name} where workspace_id = %s", [workspace_id])
                deleted[table.name] = count
    files = 0
    for root in _home_roots(settings, workspace_id):
        if root.is_dir():
            files += sum(1 for path in root.rglob("*") if path.is_file())
            shutil.rmtree(root)
    if deleted:
        compact(settings) if settings.warehouse.kind == "duckdb" else _vacuum(settings, sorted(deleted))
    entry = {"audit_id": secrets.token_hex(12), "workspace_id": workspace_id, "action": "erase", "request": request,
             "delivery_id": delivery_id, "subject": "(the whole shop)", "requested_at": requested,
             "completed_at": datetime.now(timezone.utc), "found": bool(deleted),
             "values_changed": sum(deleted.values()), "tables_changed": len(deleted), "files_changed": files,
             "detail": json.dumps(dict(deleted), sort_keys=True)}
    _audit(settings, entry)
    return entry


def pending_compliance(settings: Settings, after_inbox_id: int = 0) -> int:
    """The highest inbox id of a compliance webhook after `after_inbox_id`, or `after_inbox_id` when none."""
    rows = inbox.read_after(settings.warehouse, after_inbox_id, limit=100_000, topics=COMPLIANCE_TOPICS)
    return max([after_inbox_id, *(row["inbox_id"] for row in rows)])


def handle_compliance(settings: Settings, after_inbox_id: int = 0) -> list[dict[str, Any]]:
    """Carry out the Shopify compliance webhooks in the inbox not yet in the audit log."""
    warehouse = settings.warehouse
    try:
        done = set(warehouse.query(f"select delivery_id from {AUDIT_TABLE} where delivery_id is not null")
                   ["delivery_id"])
    except Exception:  # no audit log yet: nothing was carried out
        done = set()
    results = []
    for row in inbox.read_after(warehouse, after_inbox_id, limit=100_000, topics=COMPLIANCE_TOPICS):
        if row["provider"] != "shopify" or row["delivery_id"] in done:
            continue
        payload, workspace_id = row["payload"], row["workspace_id"]
        customer = payload.get("customer") or {}
        reference = str(customer.get("id") or customer.get("email") or "")
        common = {"request": row["topic"], "delivery_id": row["delivery_id"]}
        if row["topic"] == "shop/redact":
            results.append(erase_workspace(settings, workspace_id, **common))
        elif row["topic"] == "customers/redact":
            results.append(redact(settings, workspace_id, reference, orders=payload.get("orders_to_redact") or [],
                                  **common))
        else:
            path = export(settings, workspace_id, reference, orders=payload.get("orders_requested") or [], **common)
            results.append({"delivery_id": row["delivery_id"], "export": str(path)})
    return results
