"""The order `make test` hands test files to its two xdist workers: the longest first.

`pytest -n 2 --dist loadfile` gives each worker whole files, one after another, from one queue.
xdist's default queue puts files with many tests first, so the few-test whole-pipeline files (the
demo, the deployment shapes, the model scenarios) came last and one worker ran them while the
other had finished. Longest first (the LPT rule) lets the many short files fill in at the end, so
both workers finish within about the length of a short file.

SECONDS holds about what each long file takes on a quiet 2-core machine (`pytest --durations`, setup
included: the fresh-clone CI's figures, which `make test` prints (`--durations=30`), or a busy
machine's divided by its slowdown; docs/testing.md). Only the order depends on them: a file missing here or measured
wrong still runs, and files not listed keep their collection order after the listed ones.
"""

from __future__ import annotations

SECONDS = {
    "tests/integration/test_saas_models.py": 245,  # 290 in CI; 16% less CPU with bytecode kept (2026-12-04)
    "tests/integration/test_ecommerce_models.py": 200,
    "tests/integration/test_deployment_shapes.py": 175,
    "tests/e2e/test_demo.py": 200,
    "tests/integration/test_quarantine.py": 115,
    "tests/integration/test_privacy.py": 95,
    "tests/integration/test_insights.py": 90,
    "tests/integration/test_tenant_matrix.py": 70,
    "tests/e2e/test_browser.py": 60,
    "tests/integration/test_fx.py": 60,
    "tests/integration/test_analyst_access.py": 45,
    "tests/integration/test_exact_ratios.py": 40,  # two dbt starts; 380 s measured at load ~10
    "tests/integration/test_forecast_metrics.py": 45,  # two dbt runs per database (8.3 min at load ~22)
    "tests/integration/test_ingest_dagster.py": 55,
    "tests/integration/test_run_recovery.py": 50,
    "tests/integration/test_detection_bench.py": 45,
    "tests/integration/test_webhook_syncs.py": 35,
    "tests/unit/test_orchestration.py": 25,
}


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(items: list) -> list:
    """`items` with whole files moved: the listed files longest first, then the rest in their order."""
    return sorted(items, key=lambda item: -SECONDS.get(file_of(item.nodeid), 0))
