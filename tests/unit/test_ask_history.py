"""Questions stored per workspace (insights.questions), follow-ups that build on the stored
conversation, and suggested questions from the pack and from recent anomalies, on the hand-worked
metric tables (tests/metric_tables.py), on DuckDB and Postgres."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pytest

from pipelines.ask import chart, history
from pipelines.ask.answer import ask, today_in
from pipelines.ask.query import dimension_values
from pipelines.ask.resolve import Context, Resolved, resolve
from pipelines.packs import pack_for
from tests.metric_tables import metric_tables_home

NOW = datetime(2026, 11, 10, 15, 0, tzinfo=timezone.utc)  # Tuesday Nov 10 in New York and UTC


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def home(request, tmp_path_factory):
    url = request.getfixturevalue("new_pg_database")() if request.param == "postgres" else None
    settings, workspaces, _ = metric_tables_home(tmp_path_factory.mktemp("ask-history"), url)
    return settings.warehouse, workspaces


def test_questions_are_stored_with_their_query_and_answer_per_workspace(home):
    warehouse, workspaces = home
    shop, saas = workspaces.get("shop"), workspaces.get("saas")
    first = history.converse("net sales yesterday", shop, warehouse, conversation="store-a", via="cli", now=NOW)
    refused = history.converse("show me the raw orders table", shop, warehouse, conversation="store-a", via="api",
                               now=NOW + timedelta(seconds=1))
    history.converse("MRR yesterday", saas, warehouse, conversation="store-a", via="cli", now=NOW)
    assert first.values[0]["net_sales"] == pytest.approx(360)  # Nov 9: 400 − 40
    stored = history.recent(warehouse, "shop", conversation="store-a")
    assert [asked.question for asked in stored] == ["show me the raw orders table", "net sales yesterday"]
    assert [asked.question_id for asked in stored] == [refused.question_id, first.question_id]
    assert stored[0].status == "refused" and stored[0].query is None and stored[0].via == "api"
    assert stored[1].status == "answered" and stored[1].query == first.query and stored[1].answer == first.text
    assert stored[1].asked_at == NOW
    assert [asked.question for asked in history.recent(warehouse, "saas", conversation="store-a")] == ["MRR yesterday"]
    kept = warehouse.rows("select answer_json from insights.questions where question_id = %s", [first.question_id])
    assert json.loads(kept[0]["answer_json"])["values"][0]["net_sales"] == pytest.approx(360)


def test_a_ratio_without_a_denominator_is_answered_n_a_never_nan(home):
    """Nov 4 sold no order (DAYS): its AOV, net sales / orders, is 0 / 0, no number. The answer says
    "n/a" where the amount goes (Wording), not "$NaN.00"; the day's orders are there, 0."""
    warehouse, workspaces = home
    answer = ask("AOV and orders yesterday", workspaces.get("shop"), warehouse,
                 now=datetime(2026, 11, 5, 15, 0, tzinfo=timezone.utc))
    assert answer.status == "answered" and answer.query["range"]["start"] == answer.query["range"]["end"] == "2026-11-04"
    assert answer.values[0]["orders"] == 0 and pd.isna(answer.values[0]["aov"])
    assert "nan" not in answer.text.lower() and ": n/a" in answer.text, answer.text


def test_a_follow_up_builds_on_the_conversations_last_answer(home):
    warehouse, workspaces = home
    shop = workspaces.get("shop")
    history.converse("net sales yesterday", shop, warehouse, conversation="follow", via="cli", now=NOW)
    then = history.converse("and orders?", shop, warehouse, conversation="follow", via="cli",
                            now=NOW + timedelta(seconds=1))
    assert then.query["range"] == {"start": "2026-11-09", "end": "2026-11-09", "partial": False}
    assert then.values[0]["orders"] == 5
    before = history.converse("and the day before?", shop, warehouse, conversation="follow", via="cli",
                              now=NOW + timedelta(seconds=2))
    assert before.query["metrics"] == ["orders"] and before.query["range"]["start"] == "2026-11-08"
    # another conversation has no context: the last 7 complete days, Nov 3 to 9
    elsewhere = history.converse("and orders?", shop, warehouse, conversation="someone-else", via="cli", now=NOW)
    assert elsewhere.query["range"] == {"start": "2026-11-03", "end": "2026-11-09", "partial": False}
    assert elsewhere.values[0]["orders"] == 11  # 6 + 0 + 5
    # an hour later the conversation has moved on
    later = history.converse("and orders?", shop, warehouse, conversation="follow", via="cli",
                             now=NOW + history.FOLLOW_UP_WINDOW + timedelta(minutes=1))
    assert later.query["range"]["start"] == "2026-11-03"
    # a question that is no follow-up keeps to itself
    alone = history.converse("net sales last week", shop, warehouse, conversation="follow", via="cli",
                             now=NOW + timedelta(seconds=3))
    assert alone.query["dimensions"] == [] and alone.query["range"]["start"] == "2026-11-02"


def test_suggestions_come_from_recent_anomalies_then_the_pack_and_each_resolves(home):
    warehouse, workspaces = home
    shop = workspaces.get("shop")
    anomalies = pd.DataFrame({
        "anomaly_id": ["recent", "old", "unreported", "elsewhere"],
        "workspace_id": ["shop", "shop", "shop", "other"],
        "metric": ["net_sales", "orders", "orders", "net_sales"],
        "date": [date(2026, 11, 3), date(2026, 10, 1), date(2026, 11, 4), date(2026, 11, 4)],
        "direction": ["up", "down", "down", "up"],
        "reported": [True, True, False, True],
        "event_rank": [1, 1, 1, 1]})
    warehouse.upsert("insights.anomalies", anomalies, key=["anomaly_id"])
    drivers = pd.DataFrame({"anomaly_id": ["recent"], "workspace_id": ["shop"], "rank": [1],
                            "dimension": ["country"], "dimension_value": ["DE"]})
    warehouse.upsert("insights.anomaly_drivers", drivers, key=["anomaly_id", "rank"])
    offered = history.suggestions(warehouse, shop, now=NOW)
    assert offered[0] == history.Suggestion("Net sales by country on 2026-11-03 vs 2026-10-27", "anomaly",
                                            "Net sales went up unusually on 2026-11-03")
    assert [s.source for s in offered[1:]] == ["pack"] * (len(offered) - 1) and len(offered) >= 4
    answered = history.converse(offered[0].question, shop, warehouse, conversation="s", via="cli", now=NOW)
    assert {row["dimension_value"]: row["net_sales"] for row in answered.values} == {"DE": 144, "US": 45}
    for workspace in (shop, workspaces.get("saas")):
        pack = pack_for(workspace.vertical)
        with warehouse.reader() as read:
            context = Context(pack=pack, timezone=workspace.timezone, today=today_in(workspace, NOW),
                              values=dimension_values(read, pack, workspace.id))
        suggested = history.suggestions(warehouse, workspace, now=NOW)
        assert suggested and all(isinstance(resolve(s.question, context), Resolved) for s in suggested)


def test_a_daily_series_longer_than_the_row_limit_keeps_every_day(home, tmp_path):
    """August 1 to November 9 is 101 days (31 + 30 + 31 + 9), over the 50 rows a breakdown is cut
    to: every day is listed, the last with data (Nov 9, 360) included, and the sentence speaks of
    all of them: 90 + 189 + 0 + 360 = 639 in all (tests/metric_tables.py)."""
    warehouse, workspaces = home
    shop = workspaces.get("shop")
    daily = history.converse("daily net sales between August 1, 2026 and November 9, 2026", shop, warehouse,
                             conversation="long", via="cli", now=NOW, charts=tmp_path)
    assert len(daily.rows) == len(daily.values) == 101
    assert (daily.values[0]["period"], daily.values[-1]["period"]) == ("2026-08-01", "2026-11-09")
    assert sum(row["net_sales"] for row in daily.values) == pytest.approx(639)
    assert "101 days, latest $360.00" in daily.text and "in all $639.00" in daily.text
    assert len(chart.figure(daily, shop).axes[0].lines[0].get_ydata()) == 101


def test_a_series_gets_a_chart_of_its_numbers_and_a_total_none(home, tmp_path):
    warehouse, workspaces = home
    shop = workspaces.get("shop")
    daily = history.converse("daily net sales and orders between November 2, 2026 and November 9, 2026", shop,
                             warehouse, conversation="c", via="cli", now=NOW, charts=tmp_path)
    assert daily.chart == str(tmp_path / "shop" / f"{daily.question_id}.png")
    assert (tmp_path / "shop" / f"{daily.question_id}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    drawn = chart.figure(daily, shop)
    net_sales, orders = (axis.lines[0] for axis in drawn.axes)
    # every day, Nov 5–8 without orders at 0
    assert list(net_sales.get_ydata()) == pytest.approx([90, 189, 0, 0, 0, 0, 0, 360])
    assert list(orders.get_ydata()) == pytest.approx([1, 6, 0, 0, 0, 0, 0, 5])
    assert [t.get_text() for t in drawn.axes[-1].get_xticklabels()] == [f"11-{day:02d}" for day in range(2, 10)]
    assert history.recent(warehouse, "shop", conversation="c")[0].chart == daily.chart
    total = history.converse("net sales between November 2, 2026 and November 9, 2026", shop, warehouse,
                             conversation="c", via="cli", now=NOW, charts=tmp_path)
    by_country = history.converse("net sales by country by day between November 2, 2026 and November 9, 2026",
                                  shop, warehouse, conversation="c", via="cli", now=NOW, charts=tmp_path)
    assert total.chart is None and by_country.chart is None
    assert sorted(p.name for p in (tmp_path / "shop").iterdir()) == [f"{daily.question_id}.png"]
    assert chart.find(tmp_path, "shop", f"{daily.question_id}.png") is not None
    assert chart.find(tmp_path, "..", f"{daily.question_id}.png") is None
    assert chart.find(tmp_path, "shop", "../shop/x.png") is None
