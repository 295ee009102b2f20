"""The Stripe connector: a dlt source with one resource per raw table in the `stripe` schema.

One hidden resource (`stripe_api`) does all the reading, a full sync or the events since the
cursor (see feed.py), and yields `Batch`es; each table resource is a transformer that keeps the
batches for its table. So one pass over the API feeds every table, and each table is still its
own dlt resource, hence its own Dagster asset `["stripe", <table>]`.

Building the source reads no secret and makes no request (Dagster builds one at import time);
the key is read and the API called only when the resources are iterated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt

from pipelines.ingest import quarantine
from pipelines.ingest.pipeline import SyncStats, merge_hints
from pipelines.ingest.stripe import arrow
from pipelines.ingest.stripe.client import StripeClient
from pipelines.ingest.stripe.feed import Batch, StripeFeed, coalesced
from pipelines.own_load_jobs import COLUMN_ORDER
from pipelines.settings import Settings
from pipelines.workspaces import Workspace

CURSOR_KEY = "event_cursor"

_KEY = ("workspace_id", "id")
_DELETION = {"deleted": {"data_type": "bool"}, "deleted_at": {"data_type": "bigint"}}
_IDS = {"workspace_id": {"data_type": "text", "nullable": False}, "id": {"data_type": "text", "nullable": False}}

# table -> (primary key, merge key, column hints, description)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, dict[str, Any], str]] = {
    "customers": (_KEY, None, _DELETION, "Stripe customers, one row per customer; deleted ones flagged."),
    "products": (_KEY, None, _DELETION, "Stripe products."),
    "prices": (_KEY, None, _DELETION, "Stripe prices (amounts in minor units of `currency`)."),
    "coupons": (_KEY, None, _DELETION, "Stripe coupons."),
    "discounts": (_KEY, None, _DELETION, "Discounts (a coupon applied to a customer or subscription)."),
    "subscriptions": (_KEY, None, _DELETION, "Stripe subscriptions in their current state, every status."),
    "subscription_items": (
        _KEY, ("workspace_id", "subscription"), {"subscription": {"data_type": "text"}},
        "Current items of each subscription, all of them (paged past the 10 Stripe embeds).",
    ),
    "invoices": (_KEY, None, _DELETION, "Stripe invoices (amounts in minor units of `currency`)."),
    "invoice_lines": (
        _KEY, ("workspace_id", "invoice"), {"invoice": {"data_type": "text"}},
        "Every line of each invoice (paged past the 10 Stripe embeds).",
    ),
    "events": (
        _KEY, None, {"data": {"data_type": "json"}},
        "Stripe events as received; `data` stays in the event's own API version.",
    ),
    "subscription_history": (
        ("workspace_id", "id", "valid_from"), None,
        {**_DELETION, "valid_from": {"data_type": "bigint", "nullable": False}, "valid_to": {"data_type": "bigint"},
         "version_hash": {"data_type": "text"}},
        "Every version of each subscription, valid from `valid_from` (event time) until `valid_to`.",
    ),
    "subscription_item_history": (
        ("workspace_id", "subscription", "valid_from", "id"), ("workspace_id", "subscription", "valid_from"),
        {"subscription": {"data_type": "text"}, "valid_from": {"data_type": "bigint", "nullable": False}},
        "Items of each subscription version; join subscription_history on (workspace_id, subscription→id, valid_from).",
    ),
}
# Objects that break the contract (contract.py), one row per broken rule: `quarantine.stripe_<table>`.
QUARANTINED = ("customers", "products", "prices", "coupons", "discounts", "subscriptions", "invoices")
TABLES.update({
    quarantine.table_name(table): (("quarantine_id",), None, quarantine.COLUMNS,
                                   f"Stripe {table} that broke the contract, one row per broken rule.")
    for table in QUARANTINED
})


def _table_resource(feed: Any, name: str, file_format: str | None, as_arrow: bool, stats: SyncStats) -> Any:
    primary_key, merge_key, columns, doc = TABLES[name]
    hints = merge_hints(primary_key, merge_key)
    columns = {**_IDS, **columns} if "id" in primary_key else columns
    columns = {**columns, **{k: {**columns.get(k, {}), **v} for k, v in hints["columns"].items()}}

    def rows(batch: Batch) -> Iterator[Any]:
        if batch.table != name or not batch.rows:
            return
        if not as_arrow:
            yield batch.rows
            return
        known = {**columns, **dlt.current.source_schema().tables.get(name, {}).get("columns", {})}
        converted = arrow.to_arrow(batch.rows, known, primary_key)
        if converted is None:  # typed unlike the table's columns: dlt's dict normalizer decides (arrow.py)
            yield batch.rows
            return
        table, types = converted
        stats.arrow_rows += table.num_rows
        new_json = {column: {"data_type": "json"} for column, kind in types.items()
                    if kind == "json" and column not in known}
        yield dlt.mark.with_hints(table, dlt.mark.make_hints(columns=new_json)) if new_json else table

    resource = dlt.transformer(
        rows,
        data_from=feed,
        name=name,
        write_disposition=hints["write_disposition"],
        primary_key=hints["primary_key"],
        columns=columns,
        max_table_nesting=0,
        file_format=file_format,
    )
    # A new table's columns: these first, then the others by name (own_load_jobs.DeclaredColumnOrder),
    # not in the order the threads' pages first showed a value in each.
    resource.apply_hints(additional_table_hints={COLUMN_ORDER: list(columns)})
    resource.__doc__ = doc
    return resource


@dlt.source(name="stripe", max_table_nesting=0)
def stripe_source(
    workspace: Workspace, *, settings: Settings, stats: SyncStats, requests_per_second: float | None = None,
    targets: list[str] | None = None, as_arrow: bool = True,
) -> Any:
    """Stripe objects, events and subscription history of one workspace.

    Args:
        workspace: the tenant; its `connectors.stripe` names the base URL and the key's variable.
        settings: supplies the pinned API version (a workspace's `api_version` option overrides it).
        stats: filled with the sync mode, request and retry counts, waits and notes.
        requests_per_second: override the pace (default: the connector's `requests_per_second`
            option, else 80% of Stripe's limit for the key's mode).
        targets: event ids: a targeted sync of those events and the objects they name, read by id,
            the event cursor untouched (the webhook sensor's runs, docs/webhooks.md).
        as_arrow: rows reach dlt as Arrow tables (arrow.py); False hands dlt the dict rows, which its
            normalizer types one by one (the reference the Arrow path is tested against, and slower).
    """
    connector = workspace.connectors["stripe"]

    def stripe_api() -> Iterator[Batch]:
        client = StripeClient(
            base_url=connector.base_url,
            api_key=connector.secret("api_key"),
            api_version=connector.options.get("api_version") or settings.stripe_api_version,
            workspace_id=workspace.id,
            key_variable=connector.secret_envs["api_key"],
            stats=stats,
            requests_per_second=requests_per_second or connector.options.get("requests_per_second"),
        )
        state = dlt.current.source_state()
        feed = StripeFeed(client, workspace.id, stats)
        yield from coalesced(feed.run(state.get(CURSOR_KEY), targets))
        if targets is not None:
            return  # the event cursor is the scheduled sync's
        selected = set(dlt.current.source().selected_resources)
        if selected >= set(TABLES):
            state[CURSOR_KEY] = feed.cursor
        else:
            # Moving the cursor now would skip these events for the tables left out of this run.
            stats.notes.append("only some tables selected: event cursor left where it was")

    feed_resource = dlt.resource(stripe_api, name="stripe_api", selected=False)
    file_format = settings.warehouse.load_file_format
    return [_table_resource(feed_resource, name, file_format, as_arrow, stats) for name in TABLES]
