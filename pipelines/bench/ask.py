"""How long a question takes to answer (docs/ask.md, "Speed"): the shipped question set asked of a built
warehouse, in one process, without an LLM; p50, p95 and max over every answer."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipelines.ask.answer import ask
from pipelines.settings import Settings
from pipelines.workspaces import load_workspaces

QUESTIONS = Path(__file__).resolve().parents[1] / "ask" / "questions.yaml"
TARGET_P95_MS = 300  # issue 15, on the small sandbox's DuckDB warehouse


def run_ask_bench(settings: Settings, workspaces: dict[str, str], rounds: int = 3,
                  progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Ask every question of the set `rounds` times; `workspaces` maps the set's workspaces ("shop",
    "saas") to workspace ids of `settings`' warehouse."""
    tenants = load_workspaces(settings.workspaces_file)
    warehouse = settings.warehouse
    questions = yaml.safe_load(QUESTIONS.read_text())["questions"]
    ask(questions[0]["ask"], tenants.get(workspaces[questions[0]["workspace"]]), warehouse)  # imports, caches
    times, statuses = [], Counter()
    for round_ in range(rounds):
        for item in questions:
            started = time.perf_counter()
            answer = ask(item["ask"], tenants.get(workspaces[item["workspace"]]), warehouse)
            times.append((time.perf_counter() - started) * 1000)
            statuses[answer.status] += 1
        progress(f"round {round_ + 1} of {rounds}: {len(questions)} questions")
    times.sort()
    p95 = times[max(0, int(round(0.95 * len(times))) - 1)]
    return {"answers": len(times), "statuses": dict(statuses), "p50_ms": round(times[len(times) // 2], 1),
            "p95_ms": round(p95, 1), "max_ms": round(times[-1], 1), "target_p95_ms": TARGET_P95_MS,
            "met": p95 <= TARGET_P95_MS, "warehouse": warehouse.kind}
