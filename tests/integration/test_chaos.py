"""Chaos (issue 19, `make test-slow`): random `kill -9`s of `abos run` across its stages, each followed by
a rerun, on DuckDB and on Postgres. At the end: the raw tables equal the sandbox's truth (nothing lost,
nothing twice), every report went out once per target, and no run is left holding or waiting on a slot.

ABOS_CHAOS_KILLS (default 20) kills in all, split between the two warehouses; ABOS_CHAOS_SEED picks
the kills (default: a new seed, printed, so a failing sequence can be replayed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import psutil
import pytest

from pipelines.sandbox.core.connection import sandbox_env
from pipelines.sandbox.server import Sandbox, build_store
from pipelines.settings import load_settings
from tests.conftest import REPO
from tests.integration.test_shopify_ingest import assert_matches_truth
from tests.integration.test_stripe_ingest import assert_equals_truth
from tests.slack_standin import SlackStandIn
from tests.smtp_standin import SmtpStandIn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600)]

KILLS = int(os.environ.get("ABOS_CHAOS_KILLS") or 20)
SEED = int(os.environ.get("ABOS_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
AS_OF = date(2026, 11, 25)
SHOPS = ["demo-us-store", "demo-br-store"]
CHANNELS = {"demo-us-store": "#summit-analytics", "demo-br-store": "#loja-verde-relatorios",
            "demo-saas": "#metricly-metrics"}
TOKEN = "xoxb-chaos"
# `abos run` on the demo workspaces prints one line per run: shop ingests, the unpartitioned first
# group, the SaaS ingest, the dbt models, then insights and delivery per workspace.
RUNS_PER_PIPELINE = 8
ABOS = str(Path(sys.executable).parent / "abos")


class Truth:
    """The sandbox's truth, shaped for the Shopify ingest tests' check."""

    def __init__(self, sandbox: Sandbox):
        from pipelines.sandbox.simulation.runner import truth

        self._truth = truth(sandbox.store)["workspaces"]

    def truth(self, workspace: str) -> dict:
        return self._truth[workspace]


@pytest.fixture
def store(tmp_path):
    """The tiny demo businesses, fresh for each warehouse (the test moves their clock on)."""
    return build_store(tmp_path / "tiny.sqlite", size="tiny", seed=42, as_of=AS_OF, fixtures=None,
                       progress=lambda _: None)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path, new_pg_database) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}" if request.param == "duckdb" else new_pg_database()


def start_run(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([ABOS, "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                text=True)


def runs_started(log: Path, since: int) -> int:
    return log.read_text()[since:].count("[abos] running ")


def test_random_kills_then_reruns_lose_and_duplicate_nothing(store, warehouse_url, tmp_path, monkeypatch):
    kills = KILLS // 2 if "duckdb" in warehouse_url else KILLS - KILLS // 2
    chooser = random.Random(f"{SEED}-{warehouse_url.split(':')[0]}")
    print(f"chaos: ABOS_CHAOS_SEED={SEED}, {kills} kills on {warehouse_url.split(':')[0]}")
    home = tmp_path / "abos"
    log = tmp_path / "runs.log"
    with Sandbox(store, seed=42) as sandbox, SmtpStandIn() as smtp, SlackStandIn(token=TOKEN) as slack:
        for channel in CHANNELS.values():
            slack.add_channel(channel)
        env = {k: v for k, v in os.environ.items() if k not in ("ABOS_WORKSPACES", "ABOS_DAGSTER_PG_URL")}
        env.update({**sandbox_env(sandbox.connection_info()), **smtp.env, "ABOS_HOME": str(home),
                    "DAGSTER_HOME": str(home / "dagster"), "ABOS_WAREHOUSE_URL": warehouse_url,
                    "ABOS_SLACK_BASE_URL": slack.base_url, "DEMO_SLACK_BOT_TOKEN": TOKEN})
        for kill in range(kills):
            # A stage (the n-th run of the pipeline), then up to 4 s into it.
            stage, delay = chooser.randrange(1, RUNS_PER_PIPELINE + 1), chooser.uniform(0, 4)
            mark = len(log.read_text()) if log.exists() else 0
            process = start_run(env, log)
            while runs_started(log, mark) < stage and process.poll() is None:
                time.sleep(0.05)
            time.sleep(delay)
            descendants = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
            process.send_signal(signal.SIGKILL)
            process.wait()
            print(f"chaos: kill {kill + 1}: run {stage} of the pipeline, +{delay:.1f} s, exit {process.returncode}")
            _, alive = psutil.wait_procs(descendants, timeout=10)
            assert not alive, f"outlived the killed run: {[p.cmdline() for p in alive]}"  # dbt among them
            if chooser.random() < 0.3:
                sandbox.advance(days=1)  # the rerun has new orders and events to sync
        mark = len(log.read_text()) if log.exists() else 0
        rerun = start_run(env, log)
        assert rerun.wait(timeout=1800) == 0, log.read_text()[mark:][-5000:]

        monkeypatch.setenv("ABOS_HOME", str(home))
        monkeypatch.setenv("ABOS_WAREHOUSE_URL", warehouse_url)
        settings = load_settings()
        assert_matches_truth(settings, Truth(sandbox), SHOPS)
        assert_equals_truth(settings, sandbox)

        # Every report went out once per target: each Slack post and email is one `sent` row of the log.
        sent = settings.warehouse.query(
            "select workspace_id, week, channel, recipient, status from insights.deliveries")
        assert set(sent["status"]) == {"sent"}
        for workspace, channel in CHANNELS.items():
            posts = slack.posts(channel)
            weeks = sent[(sent.workspace_id == workspace) & (sent.channel == "slack")]
            assert len(posts) == len(weeks) >= 1, (workspace, posts)
        message_ids = [message["Message-ID"] for message in smtp.messages]
        assert len(message_ids) == len(set(message_ids)) == int((sent.channel == "email").sum())

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        storage = instance.event_log_storage
        for key in storage.get_concurrency_keys():
            info = storage.get_concurrency_info(key)
            assert not info.claimed_slots and not info.pending_steps, key
        live = instance.get_run_records(dg.RunsFilter(statuses=[
            dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]))
        assert not live
