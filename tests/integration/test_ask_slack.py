"""The Slack slash command of `abos serve` over real HTTP (the shared `ask_server`, tests/ask_server.py):
requests signed as Slack documents it, answers in Block Kit with the hand-worked numbers of
tests/metric_tables.py, and one message for every team or channel no workspace answers in."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
import requests
import yaml

from pipelines.ask.answer import Answer
from pipelines.serve.slack import EXAMPLES, NOT_CONNECTED, SlackCommands, answer_blocks
from pipelines.workspaces import load_workspaces
from tests.ask_server import (OTHER_SIGNING_SECRET, OTHER_TEAM, SAAS_CHANNEL, SHOP_CHANNEL, SIGNING_SECRET, TEAM,
                              WORKSPACES, serve_ask, slack_headers)
from tests.openai_standin import OpenAIStandIn
from tests.slack_standin import SlackStandIn

NOV_2_TO_4 = "between November 2, 2026 and November 4, 2026"


def command(server, text: str, *, team: str = TEAM, channel: str = SHOP_CHANNEL, secret: str = SIGNING_SECRET,
            t: int | None = None, headers: dict[str, str] | None = None, **extra: str) -> requests.Response:
    """POST a slash command as Slack sends it: a form body, signed over its raw bytes."""
    body = urlencode({"token": "deprecated-verification-token", "team_id": team, "team_domain": "acme",
                      "channel_id": channel, "channel_name": "analytics", "user_id": "U0USER001",
                      "user_name": "ana", "command": "/ask", "text": text,
                      "response_url": "https://hooks.slack.com/commands/T0TEAM001/1/x", **extra}).encode()
    signed = slack_headers(body, secret, t=t)
    return requests.post(f"{server.url}/v1/slack/commands", data=body, headers={**signed, **(headers or {})},
                         timeout=60)


def fields(blocks: list[dict]) -> list[str]:
    return [field["text"] for block in blocks if block["type"] == "section" for field in block.get("fields", [])]


def test_a_signed_command_gets_the_hand_worked_numbers_in_block_kit(ask_server):
    reply = command(ask_server, f"net sales and AOV {NOV_2_TO_4}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    sentence, table, context = body["blocks"]
    assert sentence["type"] == "section" and "$279.00" in sentence["text"]["text"]  # 90 + 189 + 0
    # one row: a field per column, its label over its value; AOV = 279 / 7 orders
    assert fields([table]) == ["*Net sales*\n$279.00", "*Average order value*\n$39.86"]
    cited = [element["text"] for element in context["elements"]]
    assert context["type"] == "context" and cited[0].startswith("Net sales: gross_sales")
    assert "Range: from 2026-11-02 to 2026-11-04 (America/New_York)" in cited
    assert any(line.startswith("Tables read: metrics.metric_values. Data through: 2026-11-09") for line in cited)


def test_a_breakdown_is_a_field_per_row_and_each_channel_answers_for_its_own_workspace(ask_server):
    by_country = command(ask_server, f"net sales by country {NOV_2_TO_4}").json()["blocks"]
    assert by_country[1]["text"]["text"] == "country · Net sales"
    assert fields(by_country) == ["*DE*\n$144.00", "*US*\n$135.00"]  # 160 − 16; 100 − 10 + 50 − 5
    by_pair = command(ask_server, f"net sales by country and customer type {NOV_2_TO_4}").json()["blocks"]
    assert by_pair[1]["text"]["text"] == "country · customer type · Net sales"  # metric_tables.COUNTRY_TYPE
    assert fields(by_pair) == ["*DE · returning*\n$144.00", "*US · new*\n$108.00", "*US · returning*\n$27.00"]
    # the same team, the SaaS workspace's channel: its MRR, whatever the question says
    by_plan = command(ask_server, "MRR by plan between November 1, 2026 and November 8, 2026",
                      channel=SAAS_CHANNEL).json()["blocks"]
    assert fields(by_plan) == ["*Team*\n$1,050.00"]  # Starter fell to 0 on Nov 4
    other = command(ask_server, f"net sales for workspace shop {NOV_2_TO_4}", channel=SAAS_CHANNEL).json()
    assert other["text"].startswith("I can only answer questions about this workspace's own metrics")
    assert "$" not in other["text"] and fields(other["blocks"]) == []


@pytest.mark.parametrize("case", ["wrong secret", "tampered body", "stale", "from the future", "no signature",
                                  "timestamp not a number", "signature of another timestamp"])
def test_a_request_slack_did_not_sign_now_is_a_401(ask_server, case):
    now = int(time.time())
    if case == "tampered body":
        body = urlencode({"team_id": TEAM, "channel_id": SHOP_CHANNEL, "text": "net sales"}).encode()
        headers = slack_headers(body, SIGNING_SECRET)
        reply = requests.post(f"{ask_server.url}/v1/slack/commands", data=body + b"+yesterday", headers=headers,
                              timeout=60)
    else:
        change = {
            "wrong secret": {"secret": "not-the-signing-secret"},
            "stale": {"t": now - 5 * 60 - 30},  # Slack: reject requests more than five minutes old
            "from the future": {"t": now + 5 * 60 + 30},
            "no signature": {"headers": {"X-Slack-Signature": ""}},
            "timestamp not a number": {"headers": {"X-Slack-Request-Timestamp": "soon"}},
            "signature of another timestamp": {"headers": {"X-Slack-Request-Timestamp": str(now - 60)}},
        }[case]
        reply = command(ask_server, f"net sales {NOV_2_TO_4}", **change)
    assert (reply.status_code, reply.json()) == (401, {"error": "invalid signature"})
    # within the five minutes it is answered
    assert command(ask_server, f"net sales {NOV_2_TO_4}", t=now - 4 * 60).status_code == 200


def test_a_team_or_channel_no_workspace_answers_in_gets_one_message_that_names_none(ask_server):
    replies = [
        command(ask_server, "net sales", team="T0NOBODY1"),  # a team nobody configured
        command(ask_server, "net sales", channel="C0ELSEWHERE"),  # the team's other channels
        command(ask_server, "net sales", team=OTHER_TEAM, channel="C0ANY0001"),  # another app's team, this app's secret
        command(ask_server, "net sales", secret=OTHER_SIGNING_SECRET),  # this team, the other app's secret
        command(ask_server, "net sales for shop", team="T0NOBODY1"),
    ]
    assert {reply.status_code for reply in replies} == {200}
    assert {reply.text for reply in replies} == {replies[0].text}
    assert replies[0].json()["text"] == NOT_CONNECTED
    named = [w["id"] for w in WORKSPACES["workspaces"]] + [w["name"] for w in WORKSPACES["workspaces"]]
    assert not [name for name in named if name.lower() in replies[0].text.lower()]


def test_help_names_the_channels_workspace_and_slacks_ssl_check_is_answered(ask_server):
    assert command(ask_server, "").json()["text"] == (
        "Ask about Shop's numbers in plain language, e.g. `/ask net sales last week vs the week before` or "
        "`/ask top 5 products by net sales last month`.")
    assert "SaaS's numbers" in command(ask_server, "help", channel=SAAS_CHANNEL).json()["text"]
    for workspace, token in [("shop", "shop-token-1"), ("saas", "saas-token-2")]:  # each example is answered
        for example in EXAMPLES[{"shop": "ecommerce", "saas": "saas"}[workspace]]:
            asked = requests.post(f"{ask_server.url}/v1/workspaces/{workspace}/ask", json={"question": example},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
            assert asked["status"] == "answered", asked["text"]
    assert command(ask_server, "x" * 501).json()["text"] == "Ask in under 500 characters."
    checked = command(ask_server, "", ssl_check="1")
    assert (checked.status_code, checked.content) == (200, b"")


def test_text_from_a_question_or_the_data_cannot_mention_or_link_in_slack():
    answer = Answer(question="q", workspace_id="shop", status="answered", text="<!channel> & <https://evil|click>",
                    columns=["Product", "Net sales"], rows=[["<@U123> & co", "$1.00"], ["b", "$2.00"]])
    blocks = [block.to_dict() for block in answer_blocks(answer)]
    assert blocks[0]["text"]["text"] == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"
    assert fields(blocks) == ["*&lt;@U123&gt; &amp; co*\n$1.00", "*b*\n$2.00"]


def test_more_rows_than_a_section_holds_spill_into_the_next():
    rows = [[f"day {n}", f"${n}.00"] for n in range(23)]
    answer = Answer(question="q", workspace_id="shop", status="answered", text="t", columns=["Day", "Net sales"],
                    rows=rows)
    sections = [block.to_dict() for block in answer_blocks(answer)][1:]
    assert [len(section["fields"]) for section in sections] == [10, 10, 3]
    assert fields(sections)[22] == "*day 22*\n$22.00"


def test_a_series_longer_than_fifty_rows_shows_its_last_fifty_and_says_so():
    rows = [[f"2026-08-{n:03d}", f"${n}.00"] for n in range(101)]
    answer = Answer(question="q", workspace_id="shop", status="answered", text="t", columns=["Day", "Net sales"],
                    rows=rows, query={"dimensions": [], "grain": "day"})
    sections = [block.to_dict() for block in answer_blocks(answer)][1:]
    assert [len(section["fields"]) for section in sections] == [10] * 5  # 6 blocks in all, Block Kit takes 50
    assert fields(sections)[0] == "*2026-08-051*\n$51.00" and fields(sections)[-1] == "*2026-08-100*\n$100.00"
    assert sections[0]["text"]["text"] == ("Day · Net sales (the last 50 of 101 rows; the chart and the API's answer "
                                           "have all of them)")


def test_a_body_over_16_kib_is_a_413(ask_server):
    reply = command(ask_server, "net sales " + "x" * 17 * 1024)
    assert reply.status_code == 413


def test_a_workspace_whose_signing_secret_is_unset_is_reached_by_no_command(tmp_path):
    (tmp_path / "workspaces.yaml").write_text(yaml.safe_dump(WORKSPACES))
    workspaces = load_workspaces(tmp_path / "workspaces.yaml", env={})
    assert SlackCommands(workspaces, None, {"SLACK_SIGNING": "s"}).workspace_ids == ["shop", "saas"]
    assert SlackCommands(workspaces, None, {"OTHER_SLACK_SIGNING": "s"}).workspace_ids == ["quiet"]
    assert SlackCommands(workspaces, None, {}).apps == []


def test_each_persons_questions_in_a_channel_are_a_conversation_kept_in_the_history(ask_server):
    first = command(ask_server, f"net sales {NOV_2_TO_4}", user_id="U0FOLLOW1").json()
    assert fields(first["blocks"]) == ["*Net sales*\n$279.00"]
    then = command(ask_server, "and orders?", user_id="U0FOLLOW1").json()
    assert fields(then["blocks"]) == ["*Orders*\n7"]  # 1 + 6 + 0, over the same three days
    kept = requests.get(f"{ask_server.url}/v1/workspaces/shop/history", headers={"Authorization": "Bearer shop-token-1"},
                        timeout=60).json()["questions"]
    assert [(q["question"], q["via"]) for q in kept[:2]] == [("and orders?", "slack"), (f"net sales {NOV_2_TO_4}", "slack")]
    assert kept[0]["conversation"] == f"slack:{TEAM}:{SHOP_CHANNEL}:U0FOLLOW1"


def test_a_series_chart_is_an_image_block_only_at_a_public_https_address():
    answer = Answer(question="q", workspace_id="shop", status="answered", text="t", chart="https://abos.example/c.png")
    assert [block.to_dict()["type"] for block in answer_blocks(answer)] == ["section", "image"]
    answer.chart = "http://127.0.0.1:8800/v1/workspaces/shop/charts/c.png"  # Slack cannot fetch it: no image
    assert [block.to_dict()["type"] for block in answer_blocks(answer)] == ["section"]


# -- with an LLM: acknowledged at once, answered at the command's response_url ---------------------

QUESTION_2_TO_4 = f"net sales {NOV_2_TO_4}"
QUERY_ARGS = {"metrics": ["net_sales"], "dimensions": [], "start": "2026-11-02", "end": "2026-11-04",
              "grain": "total", "filters": [], "comparison": None, "order": "desc", "limit": 50}


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    """The app with an LLM key (the OpenAI stand-in) and Slack's response URLs at the Slack stand-in."""
    with OpenAIStandIn() as llm, SlackStandIn() as slack, serve_ask(
            tmp_path_factory.mktemp("ask-slack-llm"),
            settings_env={"ABOS_LLM_API_KEY": "test-key", "ABOS_LLM_BASE_URL": llm.base_url, "ABOS_LLM_MAX_RETRIES": "0"},
            app_env={"ABOS_SLACK_RESPONSE_URLS": slack.root + "/commands/"}) as server:
        yield server, llm, slack


def posted(slack: SlackStandIn, url: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not slack.responses(url):
        assert time.monotonic() < deadline, "nothing was posted to the response_url"
        time.sleep(0.05)
    (message,) = slack.responses(url)
    return message


def model(reply):
    """A model that queries net sales Nov 2–4, then says `reply(rows)`."""
    def answer(request: dict):
        results = [m for m in request["messages"] if m["role"] == "tool"]
        if not results:
            return OpenAIStandIn.tool_call("query_metrics", QUERY_ARGS)
        return reply(json.loads(results[-1]["content"])["rows"])
    return answer


def test_with_an_llm_the_command_is_acknowledged_within_3_seconds_and_answered_at_the_response_url(llm_server):
    server, llm, slack = llm_server
    llm.reply(model(lambda rows: f"You sold {rows[0][0]} in net sales from 2026-11-02 to 2026-11-04."))
    llm.delay(2.0)  # two model turns: four seconds, longer than Slack waits
    try:
        url = slack.response_url()
        started = time.monotonic()
        ack = command(server, QUESTION_2_TO_4, response_url=url, user_id="U0LLM0001")
        assert time.monotonic() - started < 3 and ack.status_code == 200
        assert ack.json()["text"].startswith("Looking into") and fields(ack.json()["blocks"]) == []
        message = posted(slack, url)
    finally:
        llm.delay(0)
    assert message["response_type"] == "ephemeral" and message["replace_original"] is True
    assert message["text"] == "You sold $279.00 in net sales from 2026-11-02 to 2026-11-04."  # 90 + 189 + 0
    assert fields(message["blocks"]) == ["*Net sales*\n$279.00"]
    kept = requests.get(f"{server.url}/v1/workspaces/shop/history", headers={"Authorization": "Bearer shop-token-1"},
                        timeout=60).json()["questions"]
    assert [(q["source"], q["via"]) for q in kept if q["conversation"] == f"slack:{TEAM}:{SHOP_CHANNEL}:U0LLM0001"] \
        == [("llm", "slack")]


def test_with_an_llm_numbers_not_in_the_tool_results_give_the_templated_answer(llm_server):
    server, llm, slack = llm_server
    llm.reply(model(lambda _: "Net sales were $312.00 from 2026-11-02 to 2026-11-04, up 12%."))
    url = slack.response_url()
    command(server, QUESTION_2_TO_4, response_url=url)
    message = posted(slack, url)
    assert message["text"].startswith("Net sales from 2026-11-02 to 2026-11-04: $279.00")
    assert "312" not in json.dumps(message)


def test_with_an_llm_refusals_and_unknown_response_urls_are_answered_at_once_without_the_model(llm_server):
    server, llm, slack = llm_server
    asked = len(llm.requests)
    url = slack.response_url()
    refused = command(server, "net sales of acme-store last week", response_url=url).json()
    assert refused["text"].startswith("I can only answer questions about this workspace's own metrics")
    # a response_url outside Slack's (here: outside the allowed prefix) is never posted to
    direct = command(server, QUESTION_2_TO_4, response_url="http://127.0.0.1:9/elsewhere").json()
    assert fields(direct["blocks"]) == ["*Net sales*\n$279.00"]
    time.sleep(0.5)
    assert slack.responses(url) == [] and len(llm.requests) == asked
