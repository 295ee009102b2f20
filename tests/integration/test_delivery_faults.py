"""Exactly-once delivery under lost answers, slow servers and overlapping runs (issue 19, point 4).

Each test reproduces a finding of the outside reliability probe over real sockets: the real
slack-sdk against the Slack stand-in, smtplib against aiosmtpd, two real processes sharing one
warehouse, and the real Definitions' deliver asset and retry sensor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta

import dagster as dg
import pytest

from pipelines.deliver.log import DeliveryLog
from tests.conftest import REPO
from tests.integration.test_delivery import (  # noqa: F401  (fixtures)
    CHANNEL, DELIVERIES, WEEKS, WORKSPACE, Home, built, check_result, deliver, home, slack, slack_env, smtp,
)


def reports_of(home: Home):
    """The report rows of the home's DuckDB warehouse (to copy into another warehouse)."""
    duckdb_home = {**home.env, "ABOS_WAREHOUSE_URL": ""}
    from pipelines.settings import load_settings

    return load_settings(duckdb_home).warehouse.query("select * from insights.reports")


def sent_charts(slack, post) -> list[str]:
    """The names of the files shared into a post's thread."""
    return [f["name"] for reply in slack.replies(CHANNEL, post["ts"]) for f in reply.get("files", [])]


def charts_sent_once(slack, post) -> bool:
    """The post's thread has its trend chart (and a retention chart where the report has one), each once."""
    names = sent_charts(slack, post)
    return len(names) == len(set(names)) and sum(name.endswith("-trend.png") for name in names) == 1


# --- Slack: an answer lost after the post was stored ----------------------------------------------


def test_a_lost_answer_to_a_post_or_an_upload_is_looked_up_not_sent_again(home, slack):
    # The probe: every chat.postMessage is stored and then its connection dropped; slack-sdk's
    # connection retry handler resent it blindly, 3 identical posts within 2.5 s. Uploads likewise.
    slack.drop_after("chat.postMessage")
    slack.drop_after("files.completeUploadExternal")
    assert deliver(home, **slack_env(slack)).success

    posts = slack.posts(CHANNEL)
    assert len(posts) == len(WEEKS)  # one post per report, not three
    assert len(slack.calls_of("chat.postMessage")) == len(WEEKS)
    assert all(charts_sent_once(slack, post) for post in posts)
    # one upload per chart: each report's trend chart, and the retention chart where a report has one
    assert len(slack.calls_of("files.completeUploadExternal")) == sum(len(sent_charts(slack, p)) for p in posts)
    assert slack.calls_of("conversations.history") and slack.calls_of("conversations.replies")
    rows = [d for d in home.rows() if d.channel == "slack"]
    assert [(d.status, d.attempts) for d in rows] == [("sent", 1)] * len(WEEKS)
    assert {d.external_id.split("/")[1] for d in rows} == {p["ts"] for p in posts}


def test_a_post_lost_before_slack_stored_it_is_sent_once_after_the_lookup(home, slack):
    # The connection drops before Slack stored anything: the lookup finds nothing, so the retry
    # posts, once.
    slack.drop_before("chat.postMessage", times=1)
    assert deliver(home, **slack_env(slack)).success
    assert len(slack.posts(CHANNEL)) == len(WEEKS)
    assert [d.status for d in home.rows() if d.channel == "slack"] == ["sent"] * len(WEEKS)


def test_rate_limits_are_still_waited_out_and_retried(home, slack):
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    slack.rate_limit("files.completeUploadExternal", times=1, retry_after=1)
    assert deliver(home, **slack_env(slack)).success
    assert len(slack.posts(CHANNEL)) == len(WEEKS)
    assert [c.status for c in slack.calls_of("chat.postMessage")] == [429] + [200] * len(WEEKS)
    assert all(charts_sent_once(slack, post) for post in slack.posts(CHANNEL))


# --- SMTP: a message accepted, its 250 late or lost -----------------------------------------------

FAST_SMTP = {"ABOS_SMTP_TIMEOUT_SECONDS": "1", "ABOS_SMTP_DATA_TIMEOUT_SECONDS": "3"}


def test_an_email_whose_acceptance_is_never_heard_is_unconfirmed_and_never_resent(home, smtp):
    # The probe: the server stored the message and answered 250 after the client's timeout; the send
    # counted as failed and was retried, 3 copies with one Message-ID. Here the data timeout is 3 s.
    smtp.answer_late(5, times=1)
    env = {**smtp.env, **FAST_SMTP}
    first = deliver(home, **env)
    # Unconfirmed needs the operator: the run fails after the other deliveries, so the alert fires.
    assert not first.success
    failure = next(e for e in first.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert "unconfirmed" in description and "docs/delivery.md" in description
    for _ in range(2):
        deliver(home, **env)
    assert len(smtp.messages) == len(WEEKS)
    assert len({m["Message-ID"] for m in smtp.messages}) == len(WEEKS)
    email_rows = [d for d in home.rows() if d.channel == "email"]
    assert sorted((d.status, d.attempts) for d in email_rows) == [("sent", 1), ("unconfirmed", 1)]
    unconfirmed = next(d for d in email_rows if d.status == "unconfirmed")
    assert "ABOS_SMTP_DATA_TIMEOUT_SECONDS" in unconfirmed.last_error
    assert unconfirmed.external_id == smtp.messages[0]["Message-ID"]  # what to look for in the server's log
    check = check_result(deliver(home, **env))
    assert not check.passed and "unconfirmed" in check.description


def test_a_slow_server_within_the_data_timeout_is_a_plain_success(home, smtp):
    smtp.answer_late(1.5)  # slower than ABOS_SMTP_TIMEOUT_SECONDS, within ABOS_SMTP_DATA_TIMEOUT_SECONDS
    assert deliver(home, **smtp.env, **FAST_SMTP).success
    assert len(smtp.messages) == len(WEEKS)
    assert [(d.status, d.attempts) for d in home.rows() if d.channel == "email"] == [("sent", 1)] * len(WEEKS)


# --- two runs of one workspace at once ------------------------------------------------------------

RUN = """
import sys
from pipelines.deliver.delivery import deliver_workspace
from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces

settings = load_settings()
touched = deliver_workspace(settings, load_workspaces(settings.workspaces_file).get(sys.argv[1]), run_id=sys.argv[2])
print(len(touched))
"""


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_runs_at_once_send_each_report_once(home, slack, smtp, backend, request):
    # The probe: two deliver runs for one workspace at once sent 2 posts and 2 emails, and the log
    # showed one row with attempts=1. Slow servers make the runs overlap for sure.
    slack.delay("chat.postMessage", 2.5)
    smtp.answer_late(2.5)
    env = {**os.environ, **home.env, **slack_env(slack), **smtp.env}
    if backend == "postgres":
        env["ABOS_WAREHOUSE_URL"] = home.env["ABOS_WAREHOUSE_URL"] = request.getfixturevalue("new_pg_database")()
        home.settings.warehouse.upsert("insights.reports", reports_of(home), key=["report_id"])

    def start(run_id: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", RUN, WORKSPACE, run_id], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    runs = [start("run-a"), start("run-b")]  # both read the log before either has sent anything
    for process in runs:
        _out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err[-3000:]

    posts = slack.posts(CHANNEL)
    assert len(posts) == len(WEEKS) and len({p["metadata"]["event_payload"]["idempotency_key"] for p in posts}) == 2
    assert len(smtp.messages) == len(WEEKS) and len({m["Message-ID"] for m in smtp.messages}) == len(WEEKS)
    assert [(d.status, d.attempts) for d in home.rows()] == [("sent", 1)] * 2 * len(WEEKS)


# --- a failure retried within hours, and `abos run` says so ---------------------------------------


def test_a_failed_delivery_is_retried_by_the_sensor_within_hours(home, slack, monkeypatch):
    from pipelines.deliver.sensors import RETRY_SENSOR, retry_delay

    # Monday 08:00: Slack is down (a connection refused: nothing was sent).
    down = {**slack_env(slack), "ABOS_SLACK_BASE_URL": "http://127.0.0.1:9/api/"}
    assert deliver(home, **down).success  # attempts are left: the run succeeds, the check warns
    failed = [d for d in home.rows() if d.status == "failed"]
    assert [d.channel for d in failed] == ["slack"] * len(WEEKS)

    env = {**home.env, **slack_env(slack)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import importlib

    import pipelines.definitions

    defs = importlib.reload(pipelines.definitions).defs
    sensor = defs.resolve_sensor_def(RETRY_SENSOR)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        assert list(_requests(sensor, context)) == []  # too early: the first retry waits retry_delay(1)

        # As if the failure was retry_delay(1) ago (15 minutes, not a week).
        assert retry_delay(1) <= timedelta(hours=1)
        _age(home, retry_delay(1) + timedelta(seconds=1))
        (request,) = _requests(sensor, context)
        assert request.partition_key == WORKSPACE and request.asset_selection == [DELIVERIES]
        assert list(_requests(sensor, dg.build_sensor_context(instance=instance, definitions=defs,
                                                              cursor=context.cursor))) == []  # asked once

        result = dg.materialize([a for a in defs.resolve_asset_graph().assets_defs if DELIVERIES in a.keys],
                                selection=request.asset_selection, partition_key=request.partition_key,
                                instance=instance, raise_on_error=False)
    assert result.success
    assert len(slack.posts(CHANNEL)) == len(WEEKS)
    assert [(d.status, d.attempts) for d in home.rows() if d.channel == "slack"] == [("sent", 2)] * len(WEEKS)


def _requests(sensor: dg.SensorDefinition, context) -> list[dg.RunRequest]:
    result = sensor.evaluate_tick(context)
    context.update_cursor(result.cursor)
    return result.run_requests or []


def _age(home: Home, by: timedelta) -> None:
    """Move every attempt of the workspace `by` into the past (time passing, in the real log)."""
    log = DeliveryLog(home.settings.warehouse)
    for delivery in log.load(WORKSPACE).values():
        log.save(delivery.replace(last_attempt_at=delivery.last_attempt_at - by,
                                  first_attempt_at=delivery.first_attempt_at - by))


def test_abos_run_exits_non_zero_when_a_delivery_failed(home, smtp, monkeypatch, capfd):
    from pipelines import cli
    from pipelines.refresh import stage_job
    from pipelines.settings import load_settings
    from pipelines.workspaces import load_workspaces

    smtp.refuse(times=1)  # one email of two is refused: retryable, so the run itself succeeds
    env = {**home.env, **smtp.env}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import importlib

    import pipelines.definitions

    full = importlib.reload(pipelines.definitions).defs
    # Only the deliver stage: the reports are built already, and nothing here can ingest.
    only_delivery = dg.Definitions(assets=[a for a in full.resolve_asset_graph().assets_defs
                                           if DELIVERIES in a.keys],
                                   jobs=[stage_job("weekly_report", dg.AssetSelection.assets(DELIVERIES), "")])
    monkeypatch.setattr(pipelines.definitions, "defs", only_delivery)
    settings = load_settings()
    args = argparse.Namespace(command="run", verbose=False, json=False)
    code = cli._run_pipeline(load_workspaces(settings.workspaces_file), settings, args)
    assert code == 1
    error = capfd.readouterr().err  # the terminal's progress lines (written to the process's stderr)
    assert f"deliveries of {WORKSPACE}: 1 failed" in error
