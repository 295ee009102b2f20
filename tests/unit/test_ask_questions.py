"""The shipped question set (pipelines/ask/questions.yaml) resolved without an LLM: at least 95%
get exactly their expected query object, clarification or unsupported notice, and every hostile
question is refused. Expected dates are worked out by hand in the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.ask.resolve import Clarify, Context, Refused, Resolved, Unsupported, resolve
from pipelines.packs import pack_for

QUESTIONS = Path(__file__).resolve().parents[2] / "pipelines" / "ask" / "questions.yaml"
SET = yaml.safe_load(QUESTIONS.read_text())
CONTEXTS = {name: Context(pack=pack_for(spec["vertical"]), timezone=spec["timezone"], today=SET["today"],
                          country=spec["country"], values={k: set(v) for k, v in spec["values"].items()})
            for name, spec in SET["workspaces"].items()}


def outcome(item: dict) -> dict:
    """What the resolver made of a question, in the question set's terms."""
    context = CONTEXTS[item["workspace"]]
    previous = resolve(item["after"], context).query if "after" in item else None
    found = resolve(item["ask"], context, previous)
    if isinstance(found, Refused):
        return {"refused": True}
    if isinstance(found, Clarify):
        return {"clarify": list(found.options)}
    if isinstance(found, Unsupported):
        return {"unsupported": list(found.nearest)}
    assert isinstance(found, Resolved)
    query = found.query
    got = {"metrics": list(query.metrics), "range": [query.range.start, query.range.end]}
    if query.range.partial:
        got["partial"] = True
    if query.grain != "total":
        got["grain"] = query.grain
    if query.dimensions:
        got["dimensions"] = list(query.dimensions)
    if query.filters:
        got["filters"] = {f.dimension: list(f.values) for f in query.filters}
    if query.comparison:
        got["comparison"] = {"kind": query.comparison.kind,
                             "range": [query.comparison.range.start, query.comparison.range.end]}
    got["order"], got["limit"] = query.order, query.limit
    return got


def matches(expected: dict, got: dict) -> bool:
    if "unsupported" in expected:  # the nearest metrics listed must include the expected ones
        return "unsupported" in got and set(expected["unsupported"]) <= set(got["unsupported"])
    if "refused" in expected or "clarify" in expected:
        return expected == got
    defaults = {"order": "desc", "limit": 50}
    return all(got.get(key, defaults.get(key)) == expected.get(key, defaults.get(key))
               for key in {*expected, *got})


def test_the_question_set_is_large_and_covers_every_kind():
    kinds = {item["kind"] for item in SET["questions"]}
    assert len(SET["questions"]) >= 80
    assert {"dates", "comparison", "drilldown", "saas", "follow-up", "ambiguous", "unsupported", "hostile"} <= kinds
    assert {item["workspace"] for item in SET["questions"]} == {"shop", "saas"}


def test_at_least_95_percent_resolve_as_expected():
    failures = [(item["ask"], item["expect"], outcome(item)) for item in SET["questions"]
                if not matches(item["expect"], outcome(item))]
    passed = 1 - len(failures) / len(SET["questions"])
    assert passed >= 0.95, "\n".join(f"{ask!r}: expected {expected}, got {got}" for ask, expected, got in failures)


@pytest.mark.parametrize("item", [item for item in SET["questions"] if item["kind"] == "hostile"],
                         ids=lambda item: item["ask"][:40])
def test_every_hostile_question_is_refused_the_same_way(item):
    found = resolve(item["ask"], CONTEXTS[item["workspace"]])
    assert isinstance(found, Refused)
    # the same words whatever the target: nothing tells whether a workspace or table exists
    assert found.message == resolve("select * from nowhere", CONTEXTS[item["workspace"]]).message
