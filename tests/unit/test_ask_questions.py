"""The shipped question set (pipelines/ask/questions.yaml) resolved without an LLM: at least 95%
get exactly their expected query object, clarification or unsupported notice, and every hostile
question is refused. Expected dates are worked out by hand in the file."""

from __future__ import annotations

import pytest

from pipelines.ask.resolve import Refused, resolve
from tests.question_set import CONTEXTS, SET, matches, outcome


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


@pytest.mark.parametrize("ask", ["how much MRR did we lose to downgrades last month", "MRR lost to downgrades last month",
                                 "MRR lost to churn last month", "MRR gained from upgrades last month",
                                 "MRR won back last month", "downgrade MRR last month",
                                 "MRR and downgrades last month"])
def test_mrr_named_with_its_movement_is_that_movement_alone(ask):
    """"MRR lost to downgrades" is contraction MRR, not MRR and contraction MRR; MRR named beside a
    movement ("MRR and downgrades") is still both."""
    [item] = [item for item in SET["questions"] if item["ask"] == ask]
    assert matches(item["expect"], outcome(item)), outcome(item)
