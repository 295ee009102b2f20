"""The contract's 64-bit walk is skipped only for objects wholly read from a page that cannot hold a wider number."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime

from pipelines import json_io
from pipelines.ingest.pipeline import SyncStats
from pipelines.ingest.quarantine import Quarantine
from pipelines.ingest.stripe.client import Page
from pipelines.ingest.stripe.feed import StripeFeed

NOW = datetime(2026, 11, 25, tzinfo=UTC)
CREATED = 1_790_000_000


def test_a_text_without_a_run_of_19_digits_holds_no_number_beyond_64_bits():
    for text, wide in ((b'{"a": 999999999999999999}', False),      # 18 digits: fits whatever the sign
                       (b'{"a": -999999999999999999}', False),
                       (b'{"a": 9223372036854775807}', True),       # 2^63 - 1: fits, but 19 digits are a run
                       (b'{"a": 9223372036854775808}', True),       # 2^63
                       (b'{"a": 1.5e300, "b": 12345678901234567}', False)):
        assert json_io.may_hold_wide_ints(text) is wide, text
        assert json_io.loads(text, wide_ints=wide) == json.loads(text)  # the same value by either parser
    assert type(json_io.loads(b'{"a": 9223372036854775808}')["a"]) is int  # exact, not a float


class _Client:
    """Pages past the embedded lines of an invoice: from another page, which may hold anything."""

    def __init__(self, rest: list[dict]):
        self.rest = rest

    def rest_of_list(self, embedded, path, params):
        return [*embedded["data"], *self.rest]


def _invoice(invoice_id: str, lines: list[dict], has_more: bool, **extra) -> dict:
    return {"id": invoice_id, "object": "invoice", "parent": None, "created": CREATED, "currency": "usd",
            "amount_due": 100, "amount_paid": 100, "amount_remaining": 0, "period_start": CREATED,
            "lines": {"object": "list", "data": lines, "has_more": has_more}, **extra}


def _line(line_id: str, quantity: int = 1) -> dict:
    return {"id": line_id, "object": "line_item", "pricing": None, "amount": 100, "currency": "usd",
            "quantity": quantity, "period": {"start": CREATED, "end": CREATED + 86400}}


def _feed(client: _Client) -> StripeFeed:
    """A feed over `client` whose invoices and discounts are set aside in memory."""
    feed = StripeFeed(client, "ws", SyncStats(api_time=NOW))  # type: ignore[arg-type]
    for table in ("invoices", "discounts"):
        feed.quarantines[table] = Quarantine("stripe", "ws", table, NOW, _open={})
    return feed


def _read(page: list[dict], rest: list[dict]) -> tuple[dict[str, list[str]], set[str]]:
    feed = _feed(_Client(rest))
    loaded: dict[str, list[str]] = defaultdict(list)
    for batch in feed._snapshot_batches("invoices", page, defaultdict(list), CREATED):
        loaded[batch.table] += [row["id"] for row in batch.rows]
    return loaded, feed.quarantines["invoices"].objects


def test_lines_paged_from_elsewhere_and_unmarked_pages_are_still_checked_for_wide_numbers():
    narrow = Page([
        _invoice("in_plain", [_line("il_1")], has_more=False),
        _invoice("in_paged", [_line("il_2")], has_more=True),  # another page holds a line of 2^63 (not money)
    ])
    narrow.wide_ints = False
    loaded, quarantined = _read(narrow, rest=[_line("il_3", quantity=2**63)])
    assert loaded["invoices"] == ["in_plain"] and loaded["invoice_lines"] == ["il_1"]
    assert quarantined == {"in_paged"}

    # A page of unknown origin (a replayed object, a plain list) is checked whole.
    unmarked = [_invoice("in_wide", [_line("il_4")], has_more=False, ending_balance=2**63)]
    loaded, quarantined = _read(unmarked, rest=[])
    assert loaded["invoices"] == [] and quarantined == {"in_wide"}


class _EventsClient(_Client):
    """One page of events after the cursor, marked as the client marks what it read."""

    def __init__(self, page: list[dict], rest: list[dict]):
        super().__init__(rest)
        self.page = page

    def pages_after(self, path, cursor_id):
        yield self.page


def _event(number: int, obj: dict) -> dict:
    return {"id": f"evt_{number}", "object": "event", "type": f"{obj['object']}.updated", "created": CREATED,
            "data": {"object": obj}}


def _replayed(page: list[dict], rest: list[dict]) -> tuple[list[str], set[str]]:
    feed = _feed(_EventsClient(page, rest))
    loaded = [row["id"] for batch in feed.incremental({"id": "evt_0"}) if batch.table == "invoices"
              for row in batch.rows]
    return loaded, feed.quarantines["invoices"].objects


def test_an_incremental_sync_skips_the_walk_only_for_objects_wholly_read_from_a_narrow_page():
    # A page marked narrow is taken at its word (the client marks it from the text it parsed): an
    # object wholly in it is not walked, which this page, planted with a wide number, shows.
    narrow = Page([_event(1, _invoice("in_trusted", [_line("il_1")], has_more=False, ending_balance=2**63)),
                   _event(2, _invoice("in_paged", [_line("il_2")], has_more=True))])
    narrow.wide_ints = False
    loaded, quarantined = _replayed(narrow, rest=[_line("il_3", quantity=2**63)])
    assert loaded == ["in_trusted"] and quarantined == {"in_paged"}  # lines paged from elsewhere: checked

    # A page that may hold one, or of unknown origin, is walked.
    for page in (Page([_event(1, _invoice("in_wide", [_line("il_4")], has_more=False, ending_balance=2**63))]),
                 [_event(1, _invoice("in_wide", [_line("il_4")], has_more=False, ending_balance=2**63))]):
        loaded, quarantined = _replayed(page, rest=[])
        assert loaded == [] and quarantined == {"in_wide"}


def test_the_events_after_a_cursor_keep_their_pages_mark_oldest_first():
    from pipelines.ingest.stripe.client import StripeClient

    client = StripeClient(base_url="http://localhost:9", api_key="sk_test_abc", api_version="2026-10-28.endive",
                          workspace_id="ws", key_variable="KEY", stats=SyncStats())
    answers = []
    for wide, ids in ((False, ["evt_3", "evt_2"]), (True, ["evt_5", "evt_4"])):
        page = Page({"id": i} for i in ids)
        page.wide_ints = wide
        answers.append({"data": page, "has_more": not wide})
    client.get = lambda path, params: answers.pop(0)  # the answers as `get` decodes and marks them
    pages = list(client.pages_after("/v1/events", "evt_1"))
    assert [[event["id"] for event in page] for page in pages] == [["evt_2", "evt_3"], ["evt_4", "evt_5"]]
    assert [page.wide_ints for page in pages] == [False, True]


def test_flatten_names_nests_and_keeps_lists_metadata_and_empty_objects_whole():
    from pipelines.ingest.stripe.shapes import flatten

    obj = {"id": "in_1", "lines": {"data": [1]}, "none": None, "metadata": {"a": "1", "b": {"c": None}},
           "period": {"start": 1, "end": None, "nested": {"x": True}}, "empty": {}, "tags": [{"k": 2}],
           "amount": 2.5, "status": {"inner": None}}
    # Top-level values first, then each nested object's (the last one first); nulls and `drop` left out.
    assert list(flatten(obj, drop=("lines",)).items()) == [
        ("id", "in_1"), ("metadata", {"a": "1", "b": {"c": None}}), ("empty", {}), ("tags", [{"k": 2}]),
        ("amount", 2.5), ("period__start", 1), ("period__nested__x", True)]
    assert flatten(obj)["lines__data"] == [1]
    assert list(obj) == ["id", "lines", "none", "metadata", "period", "empty", "tags", "amount", "status"]  # unchanged


def test_timestamps_are_judged_at_the_edges_of_the_bounds_as_by_their_datetime():
    from datetime import timedelta

    from pipelines.ingest.quarantine import Bounds
    from pipelines.ingest.stripe.contract import violations

    for ceiling in (NOW, NOW + timedelta(microseconds=500_000)):
        for floor in (None, NOW - timedelta(days=400), NOW - timedelta(days=400, microseconds=-1)):
            bounds = Bounds(floor=floor, ceiling=ceiling)
            last, first = int(ceiling.timestamp() // 1), int(-(-floor.timestamp() // 1)) if floor else 1
            for created in (first - 1, first, first + 1, last - 1, last, last + 1, 0, -5, 1, 10**12, 10**20):
                row = {"id": "cus_1", "created": created}
                expected = None
                if created <= 0:
                    expected = "not after 1970"
                else:
                    try:
                        expected = bounds.reason(datetime.fromtimestamp(created, UTC))
                    except (OverflowError, OSError, ValueError):
                        expected = "not a representable time"
                found = [v.reason for v in violations("customers", row, None, bounds)]
                assert found == ([expected] if expected else []), (ceiling, floor, created)


def test_json_columns_hold_dlts_own_text_empty_values_included():
    from dlt.common import json as dlt_json

    from pipelines.ingest.stripe.arrow import to_arrow

    values = [[], {}, None, [{"a": 1, "b": [2.5, None]}], {"k": "é", "n": {}}, [[]]]
    table, types = to_arrow([{"id": str(i), "v": v} for i, v in enumerate(values)], {}, ("id",))
    assert types["v"] == "json"
    assert table.column("v").to_pylist() == [None if v is None else dlt_json.dumps(v) for v in values]


def test_the_environment_is_read_once_with_what_requests_would_read_per_request(monkeypatch):
    import requests

    from pipelines.ingest.stripe.client import StripeClient

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", lambda *a, **k: 1 / 0)  # never consulted
    for url in ("https://api.stripe.com", "http://localhost:12111"):  # through the proxy, and bypassing it
        client = StripeClient(base_url=url, api_key="sk_test_abc", api_version="2026-10-28.endive",
                              workspace_id="ws", key_variable="KEY", stats=SyncStats())
        session = client._session()
        assert session.trust_env is False  # no environment read per request any more ...
        # ... yet a request gets the proxies and CA bundle requests itself reads from the environment.
        expected = requests.Session().merge_environment_settings(url + "/v1/invoices", {}, None, None, None)
        ours = session.merge_environment_settings(url + "/v1/invoices", {}, None, None, None)
        assert (ours["proxies"], ours["verify"]) == (expected["proxies"], expected["verify"])
        prepared = session.prepare_request(requests.Request("GET", url + "/v1/invoices"))
        assert prepared.headers["Authorization"] == "Bearer sk_test_abc"


def test_lists_and_maps_for_a_column_typed_text_go_as_arrow_with_the_text_dlts_normalizer_would_store():
    from dlt.common.data_types.type_helpers import coerce_value

    from pipelines.ingest.stripe.arrow import to_arrow

    # A first sync's stored schema types its json columns `text`: a later sync's batches stay Arrow.
    values = [{"plan": "pro", "n": [1, 2.5]}, [], {}, None, ["txr_1"]]
    converted = to_arrow([{"id": str(i), "metadata": v} for i, v in enumerate(values)],
                         {"metadata": {"data_type": "text"}}, ("id",))
    assert converted is not None
    table, _ = converted
    assert table.column("metadata").to_pylist() == [None if v is None else coerce_value("text", "json", v)
                                                    for v in values]
    # Text for a column typed as a number still goes to dlt's normalizer, which decides.
    assert to_arrow([{"id": "1", "amount": "12"}], {"amount": {"data_type": "bigint"}}, ("id",)) is None
