"""LLM summaries through the real openai client and a local stand-in; the fact checker's own rules."""

from __future__ import annotations

import time

import pytest

from pipelines.insights.summaries import (
    MAX_REPLY_CHARACTERS, build_messages, check_actions, check_claims, check_numbers, summarize, template_summary,
)
from pipelines.settings import LlmSettings, SettingsError, load_settings
from tests.openai_standin import OpenAIStandIn
from tests.unit.test_reports import anomaly_frames, shop_report

TIMEOUT = 0.5
RETRIES = 1
# The client backs off about 0.5 s (with jitter) between attempts; the rest is slack for a busy machine.
MARGIN = 2.5


@pytest.fixture(scope="module")
def facts():
    anomalies, drivers = anomaly_frames()
    return shop_report(anomalies=anomalies, drivers=drivers).facts


@pytest.fixture
def llm():
    with OpenAIStandIn() as standin:
        yield standin


def settings(llm: OpenAIStandIn, **overrides) -> LlmSettings:
    return LlmSettings(**{"base_url": llm.base_url, "api_key": "test-key", "timeout_seconds": TIMEOUT,
                          "max_retries": RETRIES} | overrides)


def faithful(request: dict) -> str:
    """A summary an honest model could write, from the facts the stand-in was sent."""
    sent = OpenAIStandIn.facts_of(request)
    metrics = {metric["name"]: metric["display"] for metric in sent["metrics"]}
    anomaly = sent["anomalies"][0]
    return (f"In {sent['week']['label']} net sales were {metrics['net_sales']['current']}, "
            f"{metrics['net_sales']['change']} on the week before, "
            f"from {metrics['orders']['current']} orders. "
            f"On {anomaly['date']} refunds reached {anomaly['display']['value']} against "
            f"{anomaly['display']['expected']} expected, driven by {anomaly['drivers'][0]['phrase']}.")


def test_a_faithful_reply_is_used(llm, facts):
    llm.reply(faithful)
    summary = summarize(facts, settings(llm))
    assert summary.source == "llm" and summary.reason is None
    assert summary.text == faithful(llm.requests[0].json)
    assert "$912.50" in summary.text
    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.json["model"] == "gpt-4o-mini"
    assert request.json["messages"] == build_messages(facts)
    assert request.facts["week"] == facts["week"]  # the prompt is the facts JSON


def test_a_reply_with_one_fabricated_number_is_replaced_by_the_template(llm, facts):
    llm.reply(lambda request: faithful(request).replace("$912.50", "$1,912.50"))
    summary = summarize(facts, settings(llm))
    assert summary.source == "template"
    assert summary.text == template_summary(facts)
    assert summary.rejected_numbers == ("$1,912.50",)
    assert "'$1,912.50' matches no fact" in summary.reason
    assert "$1,912.50" in summary.rejected_reply
    assert summary.prompt_tokens == llm.prompt_tokens  # a rejected reply was still paid for


def test_no_key_means_the_template_and_no_request(llm, facts):
    configured = load_settings({"ABOS_LLM_BASE_URL": llm.base_url}).llm
    assert configured.api_key is None
    summary = summarize(facts, configured)
    assert summary.source == "template" and summary.text == template_summary(facts)
    assert summary.reason == "no LLM API key configured"
    assert summary.cost_usd is None and summary.latency_seconds is None
    assert llm.requests == []


def test_a_server_that_times_out_falls_back_within_the_bound(llm, facts):
    llm.delay(30)
    started = time.monotonic()
    summary = summarize(facts, settings(llm))
    elapsed = time.monotonic() - started
    assert summary.source == "template" and summary.text == template_summary(facts)
    assert summary.reason == "LLM call failed: APITimeoutError"
    assert elapsed < TIMEOUT * (RETRIES + 1) + MARGIN
    assert len(llm.requests) == RETRIES + 1


def test_server_errors_are_retried_then_fall_back(llm, facts):
    llm.fail(500)
    summary = summarize(facts, settings(llm))
    assert summary.source == "template"
    assert summary.reason == "LLM call failed: InternalServerError (HTTP 500)"
    assert len(llm.requests) == RETRIES + 1


def test_one_server_error_is_retried_and_the_reply_used(llm, facts):
    llm.fail(500, times=1)
    llm.reply(faithful)
    summary = summarize(facts, settings(llm))
    assert summary.source == "llm" and len(llm.requests) == 2


def test_a_malformed_or_empty_reply_falls_back(llm, facts):
    llm.malformed()
    summary = summarize(facts, settings(llm))
    assert summary.source == "template" and summary.reason.startswith("LLM call failed")
    with OpenAIStandIn() as empty:
        empty.reply("   ")
        summary = summarize(facts, settings(empty))
    assert summary.source == "template" and summary.reason == "LLM reply was empty"


def test_tokens_and_cost_are_recorded(llm, facts):
    llm.reply(faithful)
    llm.prompt_tokens, llm.completion_tokens = 2000, 300
    summary = summarize(facts, settings(llm))
    assert (summary.prompt_tokens, summary.completion_tokens) == (2000, 300)
    assert summary.cost_usd == pytest.approx((2000 * 0.15 + 300 * 0.60) / 1e6)  # gpt-4o-mini prices
    assert summary.latency_seconds > 0
    dated = summarize(facts, settings(llm, model="gpt-4o-mini-2024-07-18"))
    assert dated.cost_usd == pytest.approx(summary.cost_usd)
    local = summarize(facts, settings(llm, model="llama-3-local"))
    assert local.source == "llm" and local.prompt_tokens == 2000 and local.cost_usd is None
    assert summary.metadata()["cost_usd"] == summary.cost_usd and "text" not in summary.metadata()


def test_settings_from_the_environment():
    configured = load_settings({
        "ABOS_LLM_MODEL": "gpt-4.1-mini", "ABOS_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-general", "ABOS_LLM_API_KEY": "sk-abos-secret",
        "ABOS_LLM_TIMEOUT_SECONDS": "7.5", "ABOS_LLM_MAX_RETRIES": "0",
    }).llm
    assert configured == LlmSettings("gpt-4.1-mini", "http://127.0.0.1:9/v1", "sk-abos-secret", 7.5, 0)
    assert "sk-abos-secret" not in repr(configured)
    assert "sk-abos-secret" not in repr(load_settings({"ABOS_LLM_API_KEY": "sk-abos-secret"}))
    assert load_settings({"OPENAI_API_KEY": "sk-general"}).llm.api_key == "sk-general"
    defaults = load_settings({}).llm
    assert (defaults.model, defaults.base_url, defaults.api_key, defaults.timeout_seconds, defaults.max_retries) == \
        ("gpt-4o-mini", None, None, 20.0, 2)
    with pytest.raises(SettingsError, match="ABOS_LLM_TIMEOUT_SECONDS"):
        load_settings({"ABOS_LLM_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(SettingsError, match="ABOS_LLM_MAX_RETRIES"):
        load_settings({"ABOS_LLM_MAX_RETRIES": "-1"})


def test_the_template_passes_its_own_fact_check(facts):
    text = template_summary(facts)
    assert check_numbers(text, facts) == []
    assert "$912.50" in text and "product Trail Tent +610% vs usual Wednesdays, 81% of the rise" in text


# A small hand-made facts JSON, so each edge case's expected verdict can be read off it.
FACTS = {
    "workspace": {"id": "demo", "name": "Demo Store", "currency": "USD"},
    "week": {"label": "2026-W10", "number": 10, "year": 2026, "start": "2026-03-02", "end": "2026-03-08"},
    "previous_week": {"label": "2026-W09", "start": "2026-02-23", "end": "2026-03-01"},
    "weeks": ["2026-W09", "2026-W10"],
    "metrics": [
        {"name": "net_sales", "unit": "currency", "current": 12345.67, "previous": 11000.0, "delta": 1345.67,
         "change_pct": 12.2334, "display": {"current": "$12,345.67", "previous": "$11,000.00",
                                            "delta": "+$1,345.67", "change": "+12.2%"}},
        {"name": "orders", "unit": "count", "current": 977, "previous": 1447, "delta": -470,
         "change_pct": -32.4810,
         "display": {"current": "977", "previous": "1,447", "delta": "−470", "change": "−32.5%"}},
    ],
    "anomalies": [{"date": "2026-03-04", "unit": "currency", "value": 900.0, "expected": 200.0,
                   "drivers": [{"rank": 1, "share_pct": 71.0,
                                "phrase": "product Trail Tent −82% vs usual Wednesdays, 71% of the drop"}]}],
    "counts": {"anomalies": 1},
}


@pytest.mark.parametrize("text", [
    # money: symbols, codes, separators, suffixes, rounding to the reply's own precision
    "Net sales were $12,345.67.", "Net sales were $12,346.", "about $12.3k", "about $12.35k", "$0.01M",
    "USD 12,345.67", "12,345.67 USD", "a rise of +$1,345.67", "12345.67 in sales",
    # percentages, signs and direction words
    "up 12.2%", "up 12%", "12.2 percent", "Orders −32.5%", "orders down 32%", "orders fell by 32.48%",
    "orders -32.5%", "a drop of 32.5%",
    # counts and deltas
    "977 orders, down from 1,447", "orders fell by 470", "−470 orders",
    # shown strings: driver phrases, counts
    "Trail Tent −82%, 71% of the drop", "1 anomaly",
    # dates and weeks matched to date facts
    "on 2026-03-04", "week 2026-W10", "in week 10", "vs 2026-W09", "on March 4", "on 4 March 2026",
    "Mar 2–8", "in 2026",
    # not numbers: glued to letters
    "Q4 plans for B2B on gpt-4o",
])
def test_fact_check_accepts(text):
    assert check_numbers(text, FACTS) == []


@pytest.mark.parametrize("text, unmatched", [
    ("Net sales were $12,350.", ["$12,350"]),  # a whole-dollar figure must round the fact
    ("about $12.4k", ["$12.4k"]),
    ("up 12.3%", ["12.3%"]),  # 12.2334% shown to one decimal is 12.2%
    ("down 12.2%", ["12.2%"]),  # the right size, the wrong direction
    ("Orders +32.5%", ["+32.5%"]),
    ("orders rose by 470", ["470"]),
    ("978 orders", ["978"]),
    ("$977", ["$977"]),  # a count is no amount
    ("12.2 dollars? no: $12.2", ["$12.2"]),
    ("2 anomalies", ["2"]),
    ("Trail Tent −83%", ["−83%"]),
    ("on 2026-03-05", ["2026-03-05"]),
    ("week 2026-W11", ["2026-W11"]),
    ("in week 11", ["week 11"]),
    ("on March 5", ["March 5"]),
    ("Mar 2–9", ["Mar 2–9"]),
    ("on 4 March 2025", ["4 March 2025"]),
])
def test_fact_check_rejects(text, unmatched):
    assert check_numbers(text, FACTS) == unmatched


# --- hostile and oversized replies ---------------------------------------------------------------


def test_a_huge_reply_is_not_used_and_not_kept_whole(llm, facts):
    llm.reply(lambda request: faithful(request) + " " + "x" * 2_200_000)  # a 2.2 MB report.html happened
    summary = summarize(facts, settings(llm))
    assert summary.source == "template" and summary.text == template_summary(facts)
    assert summary.reason.startswith("LLM reply too long (2,2")
    assert len(summary.rejected_reply) == MAX_REPLY_CHARACTERS


@pytest.mark.parametrize("markup", ["<!channel> <!here>", "<https://evil.example/login|slack.com>",
                                    "see https://evil.example", "<b>bold</b>", "[slack.com](https://evil.example)"])
def test_a_reply_with_a_link_or_markup_is_not_used(llm, facts, markup):
    llm.reply(lambda request: f"{faithful(request)} {markup}")
    summary = summarize(facts, settings(llm))
    assert summary.source == "template" and summary.reason == "LLM reply holds a link or markup"


def test_invisible_characters_are_removed_from_a_reply(llm, facts):
    llm.reply(lambda request: "\u202e" + faithful(request).replace(" ", " \u200b", 2) + "\x1b[31m")
    summary = summarize(facts, settings(llm))
    assert summary.source == "llm"
    assert summary.text == faithful(llm.requests[0].json) + "[31m"
    assert not any(ch in summary.text for ch in "\u202e\u200b\x1b")


# --- claims about a metric: directions, multiples, and which metric a number is ---------------------

# FACTS with labels, an AOV and an anomaly of net sales (hand-made, so each verdict reads off it):
# net sales +12.2% (ratio 12,345.67 / 11,000 = 1.12), orders −32.5% (977 / 1,447 = 0.68),
# AOV $102.88 (+8.3%), and net sales on 2026-03-04 at $900.00 against $200.00 expected (4.5 times).
LABELLED = {**FACTS, "metrics": [
    {**FACTS["metrics"][0], "label": "Net sales"},
    {**FACTS["metrics"][1], "label": "Orders"},
    {"name": "aov", "label": "Average order value", "unit": "currency", "current": 102.88, "previous": 95.0,
     "delta": 7.88, "change_pct": 8.2947, "display": {"current": "$102.88", "previous": "$95.00", "delta": "+$7.88",
                                                      "change": "+8.3%"}},
], "anomalies": [{**FACTS["anomalies"][0], "metric": "net_sales", "label": "Net sales", "direction": "up"}]}


@pytest.mark.parametrize("text", [
    "Net sales rose 12.2% to $12,345.67 on 977 orders, down from 1,447.",
    "Net sales were higher, while orders were lower; orders fell 32.5%.",
    "Average order value rose to $102.88 (+8.3%). AOV was $102.88.",
    "On 2026-03-04 net sales spiked to $900.00, more than quadrupled against $200.00 expected.",
    "Orders dropped on 2026-03-04, and net sales jumped.",  # no number: each direction matches its metric
    "Net sales rose twelve percent.",  # spelled out, checked as 12%
    "Orders fell on the week; the anomaly saw net sales 4.5 times the expected $200.00.",
    "Trail Tent −82%, 71% of the drop",  # a driver phrase: no metric named, nothing to contradict
])
def test_claims_that_agree_with_the_facts(text):
    assert check_numbers(text, LABELLED) == [] and check_claims(text, LABELLED) == []


@pytest.mark.parametrize("text, claim", [
    ("Net sales fell sharply.", "Net sales fell"),  # the probe: actual +12.2%
    ("Orders rose on the week.", "Orders rose"),
    ("Orders were higher than the week before.", "Orders were higher"),
    ("Net sales roughly tripled.", "Net sales roughly tripled"),  # the probe: actual ×1.12
    ("Net sales doubled.", "Net sales doubled"),
    ("Orders halved.", "Orders halved"),  # ×0.68
    ("Net sales grew 3 times over.", "Net sales grew 3 times"),
    ("Net sales were $102.88.", "$102.88"),  # the AOV's figure
    ("Average order value was $12,345.67.", "$12,345.67"),  # net sales' figure
    ("Net sales 977, up on the week.", "977"),  # the orders count
])
def test_claims_the_facts_contradict(text, claim):
    found = check_claims(text, LABELLED)
    assert [written for written, _ in found if written.startswith(claim.split()[0])] == [claim], found


def test_a_contradicting_direction_fails_the_summary(llm, facts):
    net_sales = next(m for m in facts["metrics"] if m["name"] == "net_sales")
    wrong = "fell sharply" if net_sales["delta"] > 0 else "rose sharply"
    llm.reply(lambda request: faithful(request) + f" Net sales {wrong} and roughly tripled.")
    summary = summarize(facts, settings(llm))
    assert summary.source == "template" and summary.rejected_numbers == ()
    assert summary.rejected_claims == (f"Net sales {wrong.split()[0]}", f"Net sales {wrong} and roughly tripled")
    assert f"contradicts Net sales {net_sales['display']['change']}" in summary.reason


def test_the_template_and_a_faithful_reply_make_no_false_claims(facts, llm):
    assert check_claims(template_summary(facts), facts) == []
    llm.reply(faithful)
    assert summarize(facts, settings(llm)).source == "llm"


def test_spelled_out_amounts_are_numbers_too():
    assert check_numbers("orders fell thirty-two percent", LABELLED) == []
    assert check_numbers("net sales rose fifteen percent", LABELLED) == ["fifteen percent"]


def test_the_template_ends_with_the_recommended_actions_and_passes_every_check(facts):
    text = template_summary(facts)
    for anomaly in facts["anomalies"]:
        assert anomaly["action"] in text
    assert check_numbers(text, facts) == [] and check_claims(text, facts) == [] and check_actions(text, facts) == []


def test_a_reply_may_repeat_the_reports_actions_but_advise_nothing_else(llm, facts):
    action = facts["anomalies"][0]["action"]
    assert check_actions(f"Refunds jumped on 2026-03-04. {action}", facts) == []
    invented = "Pause all advertising until refunds settle."
    assert check_actions(f"Refunds jumped on 2026-03-04. {invented}", facts) == [invented]
    # the action's numbers are facts too: a changed share fails the number check
    assert check_numbers(action.replace("81%", "91%"), facts) == ["91%"]
    llm.reply(lambda request: f"{faithful(request)} We recommend cutting prices on Trail Tent.")
    summary = summarize(facts, settings(llm))
    assert summary.source == "template"
    assert "'We recommend cutting prices on Trail Tent.' is no recommended action" in summary.reason
    llm.reply(lambda request: f"{faithful(request)} {action}")
    assert summarize(facts, settings(llm)).source == "llm"


def test_a_portuguese_report_is_summarized_and_checked_in_portuguese(llm):
    from tests.unit.test_reports import br_report

    facts = br_report().facts
    template = template_summary(facts)
    assert template.startswith("Loja Verde, semana 2026-W10 (2026-03-02 a 2026-03-08). Vendas líquidas R$")
    assert "Anomalia em 2026-03-04: Reembolsos foi R$\u00a0912,50 contra R$\u00a0150,00 esperado" in template
    assert check_numbers(template, facts) == [] and check_claims(template, facts) == []
    assert check_actions(template, facts) == []
    assert "Write in Portuguese (Brazil)" in build_messages(facts)[0]["content"]
    net_sales = next(metric for metric in facts["metrics"] if metric["name"] == "net_sales")["display"]
    honest = (f"Na semana 2026-W10, as vendas líquidas foram {net_sales['current']}, {net_sales['change']} sobre a "
              f"semana anterior. Os reembolsos chegaram a R$ 912,50 em 2026-03-04, contra R$ 150 esperados.")
    assert check_numbers(honest, facts) == [] and check_claims(honest, facts) == []
    # Brazilian separators are read as such: R$ 1.912,50 is 1,912.50, not 1.912
    assert check_numbers("Os reembolsos chegaram a R$ 1.912,50.", facts) == ["R$ 1,912.50"]
    fell = "As Vendas líquidas caíram na semana."
    assert check_claims(fell, facts)[0][0] == "Vendas líquidas caíram"
    assert check_actions("Recomendamos baixar os preços.", facts) == ["Recomendamos baixar os preços."]
    llm.reply(lambda request: honest)
    summary = summarize(facts, settings(llm))
    assert (summary.source, summary.text) == ("llm", honest)
