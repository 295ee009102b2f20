"""Questions read by an LLM through tool calls (pipelines/ask/llm.py), with the local OpenAI stand-in
over real HTTP and the real openai client, on the hand-worked metric tables (tests/metric_tables.py):
a model that behaves, one that invents numbers, asks for another workspace, puts SQL in arguments
or asks for personal data; the question set with both."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import openai
import pytest

from pipelines.ask.answer import context_for
from pipelines.ask.history import converse
from pipelines.ask.llm import QueryArguments, Tools, answer_with_llm, ask_llm
from pipelines.packs import pack_for
from pipelines.settings import LlmSettings
from tests.metric_tables import metric_tables_home
from tests.openai_standin import OpenAIStandIn
from tests.question_set import CONTEXTS, SET, matches, previous_of

NOW = datetime(2026, 11, 10, 15, 0, tzinfo=timezone.utc)  # Tuesday Nov 10 in New York
QUESTION = "net sales between November 2, 2026 and November 4, 2026"
NET_SALES_ARGS = {"metrics": ["net_sales"], "dimensions": [], "start": "2026-11-02", "end": "2026-11-04",
                  "grain": "total", "filters": [], "comparison": None, "order": "desc", "limit": 50}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    settings, workspaces, _ = metric_tables_home(tmp_path_factory.mktemp("ask-llm"))
    return settings, workspaces


@pytest.fixture()
def llm():
    with OpenAIStandIn() as standin:
        yield standin


def settings_for(llm: OpenAIStandIn) -> LlmSettings:
    return LlmSettings(base_url=llm.base_url, api_key="test-key", max_retries=0, timeout_seconds=10)


def tool_results(request: dict) -> list[dict]:
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


def scripted(*steps):
    """A model that takes `steps` in turn: each a tool call (name, arguments) or a function of the
    tool results so far that returns the reply's text."""
    def answer(request: dict):
        step = steps[min(len(tool_results(request)), len(steps) - 1)]
        if callable(step):
            return step(tool_results(request))
        return OpenAIStandIn.tool_call(step[0], step[1], call_id=f"call_{len(tool_results(request))}")
    return answer


def test_a_model_that_behaves_answers_through_the_tools_with_the_tables_numbers(home, llm):
    settings, workspaces = home
    llm.reply(scripted(("list_metrics", {}), ("resolve_time_phrase", {"phrase": "between November 2, 2026 and "
                                                                                "November 4, 2026"}),
                       ("search_dimension_values", {"dimension": "country", "text": "u"}),
                       ("query_metrics", NET_SALES_ARGS),
                       lambda results: f"You sold {results[-1]['rows'][0][0]} in net sales from 2026-11-02 to "
                                       f"2026-11-04."))
    answer = ask_llm(QUESTION, workspaces.get("shop"), settings.warehouse, settings_for(llm), now=NOW)
    assert answer.source == "llm" and answer.llm["used"] is True
    assert answer.text == "You sold $279.00 in net sales from 2026-11-02 to 2026-11-04."  # 90 + 189 + 0
    assert answer.values[0]["net_sales"] == pytest.approx(279) and answer.citations["tables"]
    assert answer.llm["tool_calls"] == ["list_metrics", "resolve_time_phrase", "search_dimension_values",
                                        "query_metrics"]
    first, last = llm.requests[0].json, llm.requests[-1].json
    assert first["model"] == "gpt-4o-mini" and "2026-11-10" in first["messages"][0]["content"]
    tools = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert set(tools) == {"list_metrics", "list_dimensions", "search_dimension_values", "resolve_time_phrase",
                          "query_metrics"}
    for tool in tools.values():  # strict: closed objects, every property required, no workspace anywhere
        assert tool["strict"] is True and tool["parameters"]["additionalProperties"] is False
        assert tool["parameters"]["required"] == list(tool["parameters"]["properties"])
        assert "workspace" not in json.dumps(tool["parameters"]) and "sql" not in json.dumps(tool["parameters"])
        words = set(json.dumps(tool["parameters"]).replace('"', " ").split())
        assert not {"maxItems", "maximum", "maxLength", "$ref"} & words  # outside the strict subset
    assert tools["query_metrics"]["parameters"]["properties"]["metrics"]["items"]["enum"][0] == "net_sales"
    results = tool_results(last)
    assert results[1] == {"phrase": "between November 2, 2026 and November 4, 2026", "start": "2026-11-02",
                          "end": "2026-11-04", "partial": False, "kind": "range"}
    assert results[2]["values"] == ["US"]  # DE has no "u"
    assert "1000000" not in json.dumps(results) and "1,000,000" not in json.dumps(results)  # workspace "other"


def test_a_long_series_reaches_the_model_as_its_last_50_rows_and_says_so(home):
    """August 1 to November 9 by day is 101 rows: the model gets the last 50 (Sep 21 to Nov 9, the
    last with 360), told so, and the sentence over all 101 (tests/metric_tables.py)."""
    settings, workspaces = home
    shop = workspaces.get("shop")
    with settings.warehouse.reader() as read:
        tools = Tools(context_for(shop, pack_for("ecommerce"), read, NOW), shop, read, "daily net sales")
        found = tools.query_metrics(QueryArguments(**{**NET_SALES_ARGS, "start": "2026-08-01", "end": "2026-11-09",
                                                      "grain": "day"}))
    assert len(found["rows"]) == len(found["values"]) == 50 and len(tools.answer.rows) == 101
    assert (found["values"][0]["period"], found["values"][-1]["period"]) == ("2026-09-21", "2026-11-09")
    assert found["values"][-1]["net_sales"] == pytest.approx(360)
    assert found["rows_shown"] == "the last 50 of 101 rows" and "101 days" in found["answer"]


def test_invented_numbers_give_the_templated_answer(home, llm):
    settings, workspaces = home
    llm.reply(scripted(("query_metrics", NET_SALES_ARGS),
                       lambda _: "Net sales were $312.00 from 2026-11-02 to 2026-11-04, up 12%."))
    answer = ask_llm(QUESTION, workspaces.get("shop"), settings.warehouse, settings_for(llm), now=NOW)
    assert answer.source == "resolver" and answer.llm["used"] is False
    assert answer.text.startswith("Net sales from 2026-11-02 to 2026-11-04: $279.00")  # the templated sentence
    assert "$312.00" in answer.llm["reason"] and "12%" in answer.llm["reason"]
    assert "$312.00" not in answer.text


@pytest.mark.parametrize("misuse, why", [
    (("query_metrics", {**NET_SALES_ARGS, "workspace_id": "other"}), "workspace_id"),  # another workspace
    (("resolve_time_phrase", {"phrase": "last week'; drop table metrics.metric_values; --"}), "sql"),
    (("query_metrics", {**NET_SALES_ARGS, "filters": [{"dimension": "country",
                                                        "values": ["US' or 1=1 --"]}]}), "sql"),
    (("search_dimension_values", {"dimension": "customer_email", "text": "@"}), "customer_email"),
    (("search_dimension_values", {"dimension": "product", "text": "select email from shopify.customers"}), "sql"),
    (("run_sql", {"sql": "select * from metrics.metric_values"}), "run_sql"),
    (("query_metrics", "{not json"), "not JSON"),
])
def test_a_model_that_misuses_a_tool_gets_the_resolvers_answer(home, llm, misuse, why):
    settings, workspaces = home
    llm.reply(scripted(misuse, ("query_metrics", NET_SALES_ARGS), lambda _: "Net sales were $279.00."))
    answer = ask_llm(QUESTION, workspaces.get("shop"), settings.warehouse, settings_for(llm), now=NOW)
    assert answer.source == "resolver" and answer.llm["used"] is False and why in answer.llm["reason"]
    assert answer.text.startswith("Net sales from 2026-11-02 to 2026-11-04: $279.00")
    assert tool_results(llm.requests[1].json)[0]["error"].startswith("refused:")
    assert settings.warehouse.query("select count(*) as n from metrics.metric_values")["n"].iloc[0] > 0


def test_hostile_questions_are_refused_before_the_model_is_asked(home, llm):
    settings, workspaces = home
    llm.reply(scripted(("query_metrics", NET_SALES_ARGS), lambda _: "Here are the e-mails: a@b.example"))
    hostile = [item["ask"] for item in SET["questions"] if item["kind"] == "hostile"]
    for question in hostile:
        answer = ask_llm(question, workspaces.get("shop"), settings.warehouse, settings_for(llm), now=NOW)
        assert answer.status == "refused" and answer.values == [] and answer.source == "resolver", question
    assert llm.requests == []


def test_without_a_key_or_when_the_call_fails_the_resolver_answers(home, llm):
    settings, workspaces = home
    demo = ask_llm(QUESTION, workspaces.get("shop"), settings.warehouse, LlmSettings(), now=NOW)
    assert demo.source == "resolver" and demo.llm is None and demo.values[0]["net_sales"] == pytest.approx(279)
    llm.fail(500)
    failed = ask_llm(QUESTION, workspaces.get("shop"), settings.warehouse, settings_for(llm), now=NOW)
    assert failed.source == "resolver" and "HTTP 500" in failed.llm["reason"]
    assert failed.values[0]["net_sales"] == pytest.approx(279)


def test_a_stored_follow_up_reaches_the_model_as_the_previous_query(home, llm):
    settings, workspaces = home
    shop = workspaces.get("shop")
    llm.reply(scripted(("query_metrics", NET_SALES_ARGS), lambda r: f"Net sales: {r[-1]['rows'][0][0]}."))
    first = converse(QUESTION, shop, settings.warehouse, conversation="llm", via="cli", now=NOW,
                     llm=settings_for(llm))
    orders = {**NET_SALES_ARGS, "metrics": ["orders"]}
    llm.reply(scripted(("query_metrics", orders), lambda r: f"{r[-1]['rows'][0][0]} orders."))
    then = converse("and orders?", shop, settings.warehouse, conversation="llm", via="cli", now=NOW,
                    llm=settings_for(llm))
    assert first.source == then.source == "llm" and then.text == "7 orders."  # 1 + 6 + 0
    assert json.dumps(first.query, separators=(",", ":")).replace(" ", "")[:20] in \
        llm.requests[-1].json["messages"][0]["content"].replace(" ", "")


# --- the question set, with a model that behaves and one that does not -----------------------------

def expected_arguments(expect: dict) -> dict:
    """query_metrics' arguments for a question's expected query: what a model that reads it right sends."""
    comparison = expect.get("comparison")
    return {"metrics": expect["metrics"], "dimensions": expect.get("dimensions", []),
            "start": expect["range"][0].isoformat(), "end": expect["range"][1].isoformat(),
            "grain": expect.get("grain", "total"),
            "filters": [{"dimension": d, "values": v} for d, v in expect.get("filters", {}).items()],
            "comparison": None if comparison is None else {
                "kind": comparison["kind"], "start": comparison["range"][0].isoformat() if comparison["kind"] == "range"
                else None, "end": comparison["range"][1].isoformat() if comparison["kind"] == "range" else None},
            "order": expect.get("order", "desc"), "limit": expect.get("limit", 50)}


MISBEHAVIOURS = [
    lambda args: [("query_metrics", args), lambda _: "It was $123,456.78, up 42%."],  # invented numbers
    lambda args: [("query_metrics", {**args, "workspace_id": "other"}), lambda _: "Done."],
    lambda args: [("search_dimension_values", {"dimension": "product", "text": "x' union select email --"}),
                  lambda _: "Done."],
    lambda args: [("search_dimension_values", {"dimension": "customer_email", "text": ""}), lambda _: "Done."],
]


def question_set_model(behave: bool):
    """A model that reads each question of the set as expected (a tool call with its expected query,
    then a reply copying the result's sentence), or misbehaves in turn; for clarifications and
    unsupported questions it only answers in words, so the resolver's answer stands."""
    by_question = {(item["ask"], CONTEXTS[item["workspace"]].pack.vertical): (index, item)
                   for index, item in enumerate(SET["questions"])}

    def answer(request: dict):
        vertical = "ecommerce" if "ecommerce business" in request["messages"][0]["content"] else "saas"
        index, item = by_question[(request["messages"][1]["content"], vertical)]
        if "metrics" not in item["expect"]:
            return "Which one do you mean?"
        args = expected_arguments(item["expect"])
        steps = [("query_metrics", args), lambda results: results[-1].get("answer", "No answer.")]
        if not behave:
            steps = MISBEHAVIOURS[index % len(MISBEHAVIOURS)](args)
        return scripted(*steps)(request)
    return answer


def answered_as(answer) -> dict:
    if answer.status == "refused":
        return {"refused": True}
    if answer.status == "clarify":
        return {"clarify": answer.options}
    if answer.status == "unsupported":
        return {"unsupported": answer.options}
    query = answer.query
    got = {"metrics": query["metrics"], "range": [query["range"]["start"], query["range"]["end"]],
           "order": query["order"], "limit": query["limit"]}
    for key, empty in (("grain", "total"), ("dimensions", [])):
        if query[key] != empty:
            got[key] = query[key]
    if query["range"]["partial"]:
        got["partial"] = True
    if query["filters"]:
        got["filters"] = {f["dimension"]: f["values"] for f in query["filters"]}
    if query["comparison"]:
        got["comparison"] = {"kind": query["comparison"]["kind"],
                             "range": [query["comparison"]["range"]["start"], query["comparison"]["range"]["end"]]}
    return got


def with_iso_dates(expect: dict) -> dict:
    return json.loads(json.dumps(expect, default=str))


@pytest.mark.parametrize("behave", [True, False], ids=["behaves", "misbehaves"])
def test_the_question_set_with_a_model_that_behaves_or_not(home, llm, behave):
    settings, workspaces = home
    llm.reply(question_set_model(behave))
    client = openai.OpenAI(base_url=llm.base_url, api_key="test-key", max_retries=0)
    failures, sources = [], []
    with settings.warehouse.reader() as read:
        for item in SET["questions"]:
            context = CONTEXTS[item["workspace"]]
            answer = answer_with_llm(item["ask"], context, workspaces.get(item["workspace"]), read, "gpt-4o-mini",
                                     client, previous_of(item))
            sources.append(answer.source)
            if not matches(with_iso_dates(item["expect"]), answered_as(answer)):
                failures.append((item["ask"], item["expect"], answered_as(answer), answer.llm))
            if item["kind"] == "hostile":
                assert answer.status == "refused", item["ask"]
            if not behave:  # nothing the misbehaving model wrote reaches an answer
                assert "$123,456.78" not in answer.text and answer.source == "resolver"
    passed = 1 - len(failures) / len(SET["questions"])
    assert passed >= 0.95, "\n".join(map(str, failures))
    if behave:  # every question with a query was answered by the model
        assert sources.count("llm") == sum("metrics" in item["expect"] for item in SET["questions"]) - len(failures)
