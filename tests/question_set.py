"""The shipped question set (pipelines/ask/questions.yaml): its questions, the contexts they are
asked in, and how an outcome is held to what a question expects (tests/unit/test_ask_questions.py,
tests/integration/test_ask_llm.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.ask.query import Query
from pipelines.ask.resolve import Clarify, Context, Refused, Resolved, Unsupported, resolve
from pipelines.packs import pack_for

QUESTIONS = Path(__file__).resolve().parents[1] / "pipelines" / "ask" / "questions.yaml"
SET = yaml.safe_load(QUESTIONS.read_text())
CONTEXTS = {name: Context(pack=pack_for(spec["vertical"]), timezone=spec["timezone"], today=SET["today"],
                          country=spec["country"], values={k: set(v) for k, v in spec["values"].items()})
            for name, spec in SET["workspaces"].items()}


def outcome(item: dict) -> dict:
    """What the resolver made of a question, in the question set's terms."""
    context = CONTEXTS[item["workspace"]]
    found = resolve(item["ask"], context, previous_of(item))
    if isinstance(found, Refused):
        return {"refused": True}
    if isinstance(found, Clarify):
        return {"clarify": list(found.options)}
    if isinstance(found, Unsupported):
        return {"unsupported": list(found.nearest)}
    assert isinstance(found, Resolved)
    return described(found.query)


def previous_of(item: dict) -> Query | None:
    """A follow-up's previous query: its `after` question's, resolved."""
    return resolve(item["after"], CONTEXTS[item["workspace"]]).query if "after" in item else None


def described(query: Query) -> dict:
    """A query in the question set's terms."""
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
