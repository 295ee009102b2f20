"""Report messages: the Slack Block Kit payload and the email's MIME structure, from a real report's facts."""

from __future__ import annotations

import email
import email.policy

import pandas as pd
import pytest

from pipelines.deliver import slack
from pipelines.deliver.email import message_id, report_email
from pipelines.insights.reports import CHART_CID, CHART_FILE, build_report
from pipelines.packs import pack_for
from tests.unit.test_reports import ecommerce_days

KEY = "shop:2026-W10|slack|#reports"


def report(anomalies: int = 1):
    """A real report of 2026-W10 with `anomalies` anomalies on its Wednesday, each with two drivers."""
    rows = [{"anomaly_id": f"a{i}", "metric": "orders", "date": "2026-03-04", "value": 3.0 + i, "expected": 50.0,
             "lower": 40.0, "upper": 60.0, "score": -7.0 - i, "severity": "high", "direction": "down", "rule": "band"}
            for i in range(anomalies)]
    drivers = [{"anomaly_id": f"a{i}", "rank": rank, "dimension": "channel", "value": name, "share": 0.5,
                "phrase": f"{name} <web> & co: −{10 + i} orders"}
               for i in range(anomalies) for rank, name in [(1, "Online store"), (2, "Mobile app")]]
    built = build_report(workspace_id="shop", workspace_name="Shop <A> & Sons", pack=pack_for("ecommerce"),
                         daily=ecommerce_days(), week="2026-W10", timezone="America/New_York", currency="USD",
                         anomalies=pd.DataFrame(rows), drivers=pd.DataFrame(drivers))
    return built.with_summary("Net sales fell 4.0% on fewer orders <b>.")


def test_slack_message_has_summary_every_kpi_and_anomalies_with_drivers():
    facts = report().facts
    message = slack.report_message(facts, "Net sales fell <b> & rose", channel="#reports", key=KEY, report_id="r")
    blocks = message["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Weekly report: Shop <A> & Sons, 2026-W10"}}
    sections = [b for b in blocks if b["type"] == "section"]
    assert sections[0]["text"]["text"] == "Net sales fell &lt;b&gt; &amp; rose"  # mrkdwn control characters escaped
    fields = [field["text"] for b in sections for field in b.get("fields", [])]
    assert all(len(b.get("fields", [])) <= 10 for b in sections)
    for metric, field in zip(facts["metrics"], fields, strict=True):
        assert field.startswith(f"*{metric['label']}*\n{metric['display']['current']}")
        assert metric["display"]["change"] in field
    anomaly = sections[-1]["text"]["text"]
    assert anomaly.startswith("*Orders* on 2026-03-04 (Wednesday)")
    assert "• Online store &lt;web&gt; &amp; co: −10 orders" in anomaly and "• Mobile app" in anomaly
    movers = next(b["text"]["text"] for b in sections if b.get("text", {}).get("text", "").startswith("*Top movers*"))
    for mover in facts["movers"]:
        assert f"{mover['rank']}. {mover['label']} {mover['display']['change']}" in movers
        assert f"→ {slack.escape(mover['action'])}" in movers
    action = facts["anomalies"][-1]["action"]
    assert action.startswith("Start with channel Online store, 50% of the drop: check what changed there")
    assert f"→ {slack.escape(action)}" in anomaly  # what to do, under the drivers
    assert message["metadata"] == {"event_type": slack.EVENT_TYPE,
                                   "event_payload": {"idempotency_key": KEY, "report_id": "r"}}
    # the notification text is parsed like mrkdwn too: escaped as well
    assert message["text"] == "Weekly report: Shop &lt;A&gt; &amp; Sons, 2026-W10: Net sales fell &lt;b&gt; &amp; rose"


def test_no_text_of_a_slack_message_can_mention_or_link():
    hostile = "<!channel> <!here> <@U123> <https://evil.example/login|slack.com>"
    message = slack.report_message(report().facts, hostile, channel="#reports", key=KEY, report_id="r")
    texts = [message["text"]] + [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    assert all("<" not in text and ">" not in text for text in texts)
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;https://evil.example/login|slack.com&gt;" in message["text"]


def test_slack_message_stays_within_block_kit_limits_with_many_anomalies():
    facts = report(anomalies=20).facts
    blocks = slack.report_message(facts, None, channel="#r", key=KEY, report_id="r")["blocks"]
    assert len(blocks) <= 50
    shown = [b for b in blocks if b["type"] == "section" and b.get("text", {}).get("text", "").startswith("*Orders*")]
    assert len(shown) == slack.MAX_ANOMALIES
    assert blocks[-1]["elements"][0]["text"] == f"{20 - slack.MAX_ANOMALIES} more in the emailed report"


def test_email_is_text_and_html_alternatives_with_the_chart_inline():
    built = report()
    message = report_email(built.facts, built.summary, built.text, built.charts[CHART_FILE],
                           sender="Reports <reports@abos.example>", recipient="owner@shop.example", key=KEY)
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert parsed["Subject"] == "Weekly report: Shop <A> & Sons, 2026-W10"
    assert parsed["Message-ID"] == message_id(KEY, "reports@abos.example")
    assert parsed.get_content_type() == "multipart/alternative"
    text, related = parsed.get_payload()
    html, image = related.get_payload()
    assert text.get_content().replace("\r\n", "\n") == built.text
    assert f'src="cid:{CHART_CID}"' in html.get_content() and 'src="chart.png"' not in html.get_content()
    assert "Net sales fell 4.0% on fewer orders &lt;b&gt;." in html.get_content()
    assert image["Content-ID"] == f"<{CHART_CID}>" and image.get_content_disposition() == "inline"
    assert image.get_content() == built.charts[CHART_FILE]


@pytest.mark.parametrize("other", ["shop:2026-W10|email|a@x.example", "shop:2026-W11|slack|#reports"])
def test_message_id_depends_only_on_the_key_and_domain(other):
    assert message_id(KEY, "a@abos.example") == message_id(KEY, "Reports <b@abos.example>")
    assert message_id(KEY, "a@abos.example").endswith("@abos.example>")
    assert message_id(other, "a@abos.example") != message_id(KEY, "a@abos.example")


def test_a_portuguese_report_is_posted_in_portuguese():
    from tests.unit.test_reports import br_report

    facts = br_report().facts
    message = slack.report_message(facts, None, channel="#loja", key=KEY, report_id="r")
    texts = [b["text"]["text"] for b in message["blocks"] if b["type"] in ("header", "section") and "text" in b]
    assert texts[0] == "Relatório semanal: Loja Verde, 2026-W10"
    assert texts[-2] == "*Anomalias nesta semana: 1*"
    assert texts[-1].startswith("*Reembolsos* em 2026-03-04 (quarta-feira): R$\u00a0912,50, esperado R$\u00a0150,00")
    assert "→ Comece por produto Trail Tent" in texts[-1]
    assert slack.chart_upload(facts)["alt_txt"] == "Tendência de Vendas líquidas, Pedidos, Ticket médio nas últimas 12 semanas"
