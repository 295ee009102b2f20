"""Delivery acceptance: real reports, the real Definitions, a real SMTP server (aiosmtpd) and a Slack
stand-in reached by the real slack-sdk.

Reports are built once for the module without dbt: a seeded daily metric table, one anomaly per
week with its drivers, and the real `insights/reports` asset for two weeks; the second week's report
is written after a cohort table appeared, so it has a retention chart to send and the first has
none. Every test then starts from a copy of that warehouse, so each has its own delivery log and outbox.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pipelines.deliver.email import message_id
from pipelines.deliver.log import DeliveryLog
from pipelines.deliver.outbox import outbox_files
from pipelines.insights.reports import CHART_CID, RETENTION_FILE
from pipelines.packs import pack_for
from pipelines.settings import Settings, load_settings
from tests.conftest import REPO
from tests.slack_standin import SlackStandIn
from tests.smtp_standin import SmtpStandIn
from tests.unit.test_reports import ecommerce_days

WORKSPACE = "shop-a"
WEEKS = ["2026-W09", "2026-W10"]
WITH_RETENTION = "2026-W10"  # the report written once metrics.ecommerce_cohorts existed
CHANNEL = "#shop-a-reports"
RECIPIENT = "owner@shop-a.example"
TOKEN = "xoxb-delivery-test"
DELIVERIES = dg.AssetKey(["deliver", "reports"])
WORKSPACES_YAML = f"""
workspaces:
  - id: {WORKSPACE}
    name: Shop A & Sons
    vertical: ecommerce
    timezone: America/New_York
    currency: USD
    connectors:
      shopify: {{base_url: "http://127.0.0.1:9/shops/{WORKSPACE}", access_token_env: SHOP_A_TOKEN}}
    notifications:
      slack: {{channel: "{CHANNEL}", bot_token_env: SHOP_A_SLACK_TOKEN, if_token_unset: outbox}}
      email: {{to: [{RECIPIENT}]}}
"""
# Nothing configured: no SMTP host, no Slack token, no LLM.
QUIET = {"ABOS_SMTP_HOST": "", "SHOP_A_SLACK_TOKEN": "", "ABOS_LLM_API_KEY": "", "OPENAI_API_KEY": "",
         "ABOS_WAREHOUSE_URL": "", "ABOS_DELIVERY_MAX_ATTEMPTS": "", "ABOS_SLACK_BASE_URL": ""}
# (week, date, metric, value, expected, direction, drivers' phrases)
ANOMALIES = [
    ("2026-W09", "2026-02-25", "net_sales", 9100.0, 3200.0, "up", ["Hiking boots: +$4,100 (70%)"]),
    ("2026-W10", "2026-03-04", "orders", 3.0, 52.0, "down", ["Online store: −31 orders (63%)",
                                                             "Mobile app: −18 orders (37%)"]),
]


@dataclass
class Home:
    """One test's ABOS_HOME and environment, over a copy of the module's warehouse."""

    path: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return load_settings(self.env)

    def rows(self) -> list:
        return sorted(DeliveryLog(self.settings.warehouse).load(WORKSPACE).values(), key=lambda d: d.key)

    def reports(self) -> pd.DataFrame:
        return self.settings.warehouse.query("select * from insights.reports order by week")


def materialize(env: dict[str, str], keys: list[dg.AssetKey], run_config: dict | None = None,
                instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Materialize `keys` (and their checks) of the real Definitions, loaded with `env`, for the workspace."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        import pipelines.definitions

        defs = importlib.reload(pipelines.definitions).defs
        assets = [a for a in defs.resolve_asset_graph().assets_defs if a.is_materializable or a.check_keys]
        return dg.materialize(assets, selection=dg.AssetSelection.assets(*keys), partition_key=WORKSPACE,
                              instance=instance or dg.DagsterInstance.ephemeral(), run_config=run_config or {},
                              raise_on_error=False)


def deliver(home: Home, **env: str) -> dg.ExecuteInProcessResult:
    return materialize({**home.env, **env}, [DELIVERIES])


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    """Two weekly reports of one shop, written by the real `insights/reports` asset."""
    path = tmp_path_factory.mktemp("delivery-reports")
    (path / "workspaces.yaml").write_text(WORKSPACES_YAML)
    env = {**QUIET, "ABOS_HOME": str(path), "DAGSTER_HOME": str(path / "dagster"),
           "ABOS_WORKSPACES": str(path / "workspaces.yaml")}
    warehouse = load_settings(env).warehouse
    daily = ecommerce_days().reset_index().assign(workspace_id=WORKSPACE)
    pack = pack_for("ecommerce").watched()  # what the weekly report reads
    for table in pack.tables:  # each metric in the table the registry names
        columns = ["workspace_id", "date", *(m.name for m in pack.metrics if m.table == table)]
        warehouse.upsert(f"metrics.{table}", daily[columns], key=["workspace_id", "date"])
    anomalies, drivers = [], []
    for week, day, metric, value, expected, direction, phrases in ANOMALIES:
        anomaly_id = f"{WORKSPACE}:{metric}:{day}"
        anomalies.append({"anomaly_id": anomaly_id, "workspace_id": WORKSPACE, "metric": metric,
                          "date": pd.Timestamp(day), "value": value, "expected": expected,
                          "lower": expected * 0.8, "upper": expected * 1.2, "score": 6.5,
                          "severity": "high", "direction": direction, "rule": "band"})
        drivers += [{"anomaly_id": anomaly_id, "workspace_id": WORKSPACE, "rank": rank, "dimension": "channel",
                     "dimension_value": phrase.split(":")[0], "share": 0.5, "phrase": phrase}
                    for rank, phrase in enumerate(phrases, start=1)]
    warehouse.upsert("insights.anomalies", pd.DataFrame(anomalies), key=["anomaly_id"])
    warehouse.upsert("insights.anomaly_drivers", pd.DataFrame(drivers), key=["anomaly_id", "rank"])
    for week in WEEKS:
        if week == WITH_RETENTION:
            warehouse.upsert("metrics.ecommerce_cohorts", COHORTS, key=["workspace_id", "cohort_month",
                                                                        "months_since_first_order"])
        result = materialize(env, [dg.AssetKey(["insights", "reports"])],
                             {"ops": {"insights__reports": {"config": {"week": week}}}})
        assert result.success
    return Home(path, env)


# Two cohorts of a shop over their first months: enough for retention curves.
COHORTS = pd.DataFrame([
    {"workspace_id": WORKSPACE, "cohort_month": pd.Timestamp(month), "months_since_first_order": age,
     "activity_month": pd.Timestamp(month) + pd.DateOffset(months=age), "cohort_customers": 40,
     "retention_rate": rate}
    for month, rates in (("2026-01-01", [1.0, 0.3, 0.2]), ("2026-02-01", [1.0, 0.25]))
    for age, rate in enumerate(rates)])


def retention_chart(home: Home, week: str) -> bytes | None:
    """The retention chart written next to a report, or None."""
    path = Path(home.reports().set_index("week").loc[week, "chart_path"]).with_name(RETENTION_FILE)
    return path.read_bytes() if path.exists() else None


@pytest.fixture
def home(built, tmp_path) -> Home:
    """A fresh ABOS_HOME whose warehouse is a copy of the built one (the reports' files stay shared)."""
    path = tmp_path / "abos"
    path.mkdir()
    shutil.copy(built.path / "warehouse.duckdb", path / "warehouse.duckdb")
    return Home(path, {**built.env, "ABOS_HOME": str(path), "DAGSTER_HOME": str(path / "dagster")})


@pytest.fixture
def smtp():
    with SmtpStandIn() as server:
        yield server


@pytest.fixture
def slack():
    with SlackStandIn(token=TOKEN) as server:
        server.add_channel(CHANNEL)
        yield server


def slack_env(slack: SlackStandIn) -> dict[str, str]:
    return {"ABOS_SLACK_BASE_URL": slack.base_url, "SHOP_A_SLACK_TOKEN": TOKEN}


def parts(message) -> dict[str, object]:
    """The text part, the HTML part, the inline image and the attached retention chart (or None) of a report email."""
    attached = None
    if message.get_content_type() == "multipart/mixed":
        message, attachment = message.get_payload()
        assert (attachment.get_content_type(), attachment.get_filename()) == ("image/png", RETENTION_FILE)
        assert attachment.get_content_disposition() == "attachment"
        attached = attachment.get_content()
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    html, image = related.get_payload()
    assert (text.get_content_type(), related.get_content_type()) == ("text/plain", "multipart/related")
    assert (html.get_content_type(), image.get_content_type()) == ("text/html", "image/png")
    # SMTP carries lines ending in CRLF; the report file has LF
    return {"text": text.get_content().replace("\r\n", "\n"), "html": html.get_content(), "image": image,
            "retention": attached}


# --- email ---------------------------------------------------------------------------------------


def test_one_email_per_report_with_text_html_and_inline_chart_even_when_rerun(home, smtp):
    for _ in range(2):  # the second run is a retry of the whole run: nothing is sent again
        result = deliver(home, **smtp.env)
        assert result.success
    assert len(smtp.messages) == len(WEEKS)
    reports = home.reports().set_index("report_id")
    assert sorted(m["Subject"] for m in smtp.messages) == [f"Weekly report: Shop A & Sons, {w}" for w in WEEKS]
    for message in smtp.messages:
        report = reports.loc[message["X-ABOS-Delivery"].split("|")[0]]
        assert message["To"] == RECIPIENT
        assert message["Message-ID"] == message_id(message["X-ABOS-Delivery"], "reports@localhost")
        shown = parts(message)
        assert shown["text"] == Path(report["text_path"]).read_text()
        assert report["summary"] in shown["text"] and report["summary"] in shown["html"].replace("&amp;", "&")
        assert f'src="cid:{CHART_CID}"' in shown["html"]
        assert shown["image"]["Content-ID"] == f"<{CHART_CID}>"
        assert shown["image"].get_content() == Path(report["chart_path"]).read_bytes()
        assert shown["retention"] == retention_chart(home, report["week"])
    assert retention_chart(home, WITH_RETENTION)[:4] == b"\x89PNG" and retention_chart(home, WEEKS[0]) is None
    email_rows = [d for d in home.rows() if d.channel == "email"]
    assert [(d.status, d.attempts, d.via) for d in email_rows] == [("sent", 1, "smtp")] * len(WEEKS)
    assert {d.external_id for d in email_rows} == {m["Message-ID"] for m in smtp.messages}


def test_a_refused_email_is_recorded_failed_and_delivered_once_by_the_next_run(home, smtp):
    smtp.refuse(times=1)
    first = deliver(home, **smtp.env)
    assert first.success  # attempts are left: the run succeeds, the check warns
    failed = [d for d in home.rows() if d.status == "failed"]
    assert len(failed) == 1 and failed[0].channel == "email" and failed[0].attempts == 1
    assert "ABOS_SMTP_HOST" in failed[0].last_error and "451" in failed[0].last_error
    check = check_result(first)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert failed[0].report_id in check.description and RECIPIENT in check.description
    assert len(smtp.messages) == len(WEEKS) - 1

    second = deliver(home, **smtp.env)
    assert second.success and check_result(second).passed
    assert smtp.refused == 1 and len(smtp.messages) == len(WEEKS)
    assert len({m["X-ABOS-Delivery"] for m in smtp.messages}) == len(WEEKS)
    retried = next(d for d in home.rows() if d.key == failed[0].key)
    assert (retried.status, retried.attempts, retried.last_error) == ("sent", 2, None)


def test_the_check_fails_and_the_run_fails_after_the_last_attempt(home, smtp):
    smtp.refuse()  # every time
    env = {**smtp.env, "ABOS_DELIVERY_MAX_ATTEMPTS": "2"}
    assert deliver(home, **env).success  # attempt 1 of 2
    last = deliver(home, **env)  # attempt 2 of 2: recorded, then the run fails (the run-failure alert fires)
    assert not last.success
    failure = next(e for e in last.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    for week in WEEKS:
        assert f"{WORKSPACE}:{week} → email {RECIPIENT}" in description
    assert [(d.status, d.attempts) for d in home.rows() if d.channel == "email"] == [("failed", 2)] * len(WEEKS)
    # Slack (to the outbox here) was tried in the same run and succeeded
    assert [d.status for d in home.rows() if d.channel == "slack"] == ["sent"] * len(WEEKS)

    after = deliver(home, **env)  # nothing is due: no third attempt, and the check says why
    assert after.success and smtp.refused == 2 * len(WEEKS) and not smtp.messages
    check = check_result(after)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "no attempts left" in check.description and "451" in check.description and RECIPIENT in check.description


# --- Slack ---------------------------------------------------------------------------------------


def test_slack_gets_one_post_and_its_charts_per_report_and_a_429_is_retried(home, slack):
    slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    for _ in range(2):
        assert deliver(home, **slack_env(slack)).success
    posts = slack.posts(CHANNEL)
    assert len(posts) == len(WEEKS)
    assert [c.status for c in slack.calls_of("chat.postMessage")] == [429] + [200] * len(WEEKS)
    pack = pack_for("ecommerce").watched()  # the metrics a report shows
    for post, (week, _day, metric, *_rest, phrases) in zip(posts, ANOMALIES):
        blocks = post["blocks"]
        assert blocks[0]["text"]["text"] == f"Weekly report: Shop A & Sons, {week}"
        fields = [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]
        assert len(fields) == len(pack.metrics)
        assert [f.split("\n")[0].strip("*") for f in fields] == [m.label for m in pack.metrics]
        texts = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b)
        assert pack.metric(metric).label in texts
        assert all(phrase.replace("&", "&amp;") in texts for phrase in phrases)
        files = [f for reply in slack.replies(CHANNEL, post["ts"]) for f in reply.get("files", [])]
        report = home.reports().set_index("week").loc[week]
        charts = {f["name"]: slack.uploads[f["id"]]["data"] for f in files}
        expected = {f"{WORKSPACE}-{week}-trend.png": Path(report["chart_path"]).read_bytes()}
        if week == WITH_RETENTION:
            expected[f"{WORKSPACE}-{week}-retention.png"] = retention_chart(home, week)
        assert charts == expected
    assert len(slack.uploads) == len(WEEKS) + 1  # the trend charts and one retention chart
    rows = [d for d in home.rows() if d.channel == "slack"]
    assert {d.external_id.split("/")[1] for d in rows} == {p["ts"] for p in posts}


@pytest.mark.parametrize("error, setting", [("invalid_auth", "SHOP_A_SLACK_TOKEN"),
                                            ("channel_not_found", "notifications.slack.channel"),
                                            ("not_in_channel", "notifications.slack.channel")])
def test_slack_errors_name_the_workspace_and_the_setting(home, slack, error, setting):
    slack.fail("chat.postMessage", error, times=len(WEEKS))
    assert deliver(home, **slack_env(slack)).success
    failed = [d for d in home.rows() if d.channel == "slack"]
    assert [d.status for d in failed] == ["failed"] * len(WEEKS)
    for delivery in failed:
        assert f"workspace '{WORKSPACE}'" in delivery.last_error
        assert error in delivery.last_error and setting in delivery.last_error
        assert TOKEN not in delivery.last_error
    assert not slack.posts(CHANNEL)


def test_a_wrong_token_is_invalid_auth(home, slack):
    assert deliver(home, **{**slack_env(slack), "SHOP_A_SLACK_TOKEN": "xoxb-wrong"}).success
    reasons = {d.last_error for d in home.rows() if d.channel == "slack"}
    assert len(reasons) == 1 and "invalid_auth" in reasons.pop()


# --- a crash between send and record -------------------------------------------------------------

CRASH = """
import os, sys
from pipelines.deliver.delivery import deliver_workspace
from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces

channel = sys.argv[1]
settings = load_settings()

def crash(delivery):
    if delivery.channel == channel:
        os._exit(17)  # the process dies: no exception handler, no finally block runs

deliver_workspace(settings, load_workspaces(settings.workspaces_file).get(sys.argv[2]), after_send=crash)
"""


def crash_after_send(home: Home, env: dict[str, str], channel: str) -> None:
    """Run the delivery in a process that is killed right after its first `channel` send."""
    result = subprocess.run([sys.executable, "-c", CRASH, channel, WORKSPACE], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, **home.env, **env})
    assert result.returncode == 17, result.stderr[-3000:]


def test_a_crash_after_a_slack_post_does_not_post_again(home, slack, smtp):
    env = {**slack_env(slack), **smtp.env}
    crash_after_send(home, env, "slack")
    assert len(slack.posts(CHANNEL)) == 1 and len(slack.uploads) == 1
    assert [d.status for d in home.rows() if d.channel == "slack"] == ["pending"]
    # The killed process still holds its lease; its process is gone, so the next run takes it over.
    assert len(home.settings.warehouse.query("select * from insights.delivery_leases")) == 1

    assert deliver(home, **env).success
    assert slack.calls_of("conversations.history")  # reconciled by looking the message up
    posts = slack.posts(CHANNEL)
    assert len(posts) == len(WEEKS) and len({p["ts"] for p in posts}) == len(WEEKS)
    assert [len(slack.replies(CHANNEL, p["ts"])) for p in posts] == [1, 2]  # W10 has its retention chart too
    assert len(slack.uploads) == len(WEEKS) + 1
    assert [d.status for d in home.rows()] == ["sent"] * 2 * len(WEEKS)
    assert home.settings.warehouse.query("select * from insights.delivery_leases").empty  # all given back


def test_a_crash_after_an_email_is_sent_leaves_it_unconfirmed_and_never_sends_it_twice(home, slack, smtp):
    env = {**slack_env(slack), **smtp.env}
    crash_after_send(home, env, "email")
    assert len(smtp.messages) == 1
    pending = [d for d in home.rows() if d.status == "pending"]
    assert len(pending) == 1 and pending[0].channel == "email"

    result = deliver(home, **env)
    # The other deliveries are made; the unconfirmed one needs the operator, so the run fails (an alert).
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unconfirmed" in failure.step_failure_data.user_failure_data.description
    assert len(smtp.messages) == len(WEEKS)  # the other report's email, once; not the unconfirmed one again
    assert len({m["X-ABOS-Delivery"] for m in smtp.messages}) == len(WEEKS)
    unconfirmed = next(d for d in home.rows() if d.key == pending[0].key)
    assert unconfirmed.status == "unconfirmed"
    assert unconfirmed.external_id == smtp.messages[0]["Message-ID"]  # what to look for in the server's log

    again = deliver(home, **env)  # nothing left to do: the run succeeds, the check keeps warning
    assert again.success and len(smtp.messages) == len(WEEKS)
    check = check_result(again)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "unconfirmed" in check.description and pending[0].report_id in check.description


# --- hostile text and missing tokens --------------------------------------------------------------

HOSTILE = "Net sales rose. <!channel> <!here> <https://evil.example/login|slack.com> & <b>bold</b>"


def test_a_hostile_summary_reaches_slack_and_email_as_text_not_markup(home, slack, smtp):
    # As if an LLM reply had got past every check: the delivery still shows it as plain text.
    home.settings.warehouse.query("update insights.reports set summary = %s returning report_id", [HOSTILE])
    assert deliver(home, **slack_env(slack), **smtp.env).success
    escaped = "&lt;!channel&gt; &lt;!here&gt; &lt;https://evil.example/login|slack.com&gt; &amp; &lt;b&gt;"
    for post in slack.posts(CHANNEL):
        shown = [post["text"]] + [b["text"]["text"] for b in post["blocks"] if "text" in b]
        assert not any("<!channel>" in text or "<https://evil" in text for text in shown)
        assert escaped in post["text"] and any(escaped in text for text in shown[1:])
    for message in smtp.messages:
        html = parts(message)["html"]
        assert "<!channel>" not in html and "<b>bold" not in html
        assert "&lt;!channel&gt; &lt;!here&gt; &lt;https://evil.example/login|slack.com&gt;" in html


def test_an_unset_slack_token_fails_the_delivery_and_names_the_variable(home, tmp_path):
    # Without `if_token_unset: outbox`, a missing (or misspelled) token is an error, not a quiet outbox file.
    strict = tmp_path / "workspaces.yaml"
    strict.write_text(WORKSPACES_YAML.replace(", if_token_unset: outbox", ""))
    assert deliver(home, ABOS_WORKSPACES=str(strict)).success  # attempts are left
    slack_rows = [d for d in home.rows() if d.channel == "slack"]
    assert [(d.status, d.via) for d in slack_rows] == [("failed", "slack")] * len(WEEKS)
    assert all("SHOP_A_SLACK_TOKEN" in d.last_error and "if_token_unset" in d.last_error for d in slack_rows)
    assert not [p for p in outbox_files(home.settings, workspace_id=WORKSPACE) if p.suffix == ".json"]


# --- the outbox ----------------------------------------------------------------------------------


def test_nothing_configured_writes_the_outbox(home):
    first = deliver(home)
    assert first.success
    files = outbox_files(home.settings, workspace_id=WORKSPACE)
    assert sorted(p.name for p in files) == sorted(
        [f"email-{RECIPIENT}.eml", "slack-shop-a-reports.json"] * len(WEEKS))
    assert outbox_files(home.settings, run_id=first.run_id) == sorted(files)
    reports = home.reports().set_index("week")
    for week in WEEKS:
        folder = home.path / "outbox" / WORKSPACE / week
        message = message_from_bytes((folder / f"email-{RECIPIENT}.eml").read_bytes(), policy=policy.default)
        assert message["To"] == RECIPIENT and week in message["Subject"]
        shown = parts(message)
        assert shown["text"] == Path(reports.loc[week, "text_path"]).read_text()
        assert shown["image"].get_content() == Path(reports.loc[week, "chart_path"]).read_bytes()
        assert shown["retention"] == retention_chart(home, week)
        payload = json.loads((folder / "slack-shop-a-reports.json").read_text())
        post = payload["chat.postMessage"]
        assert post["channel"] == CHANNEL and week in post["blocks"][0]["text"]["text"]
        assert post["metadata"]["event_payload"]["idempotency_key"] == f"{WORKSPACE}:{week}|slack|{CHANNEL}"
        assert Path(payload["files_upload_v2"]["file"]).read_bytes()[:4] == b"\x89PNG"
        retention = payload.get("files_upload_v2 (retention)")
        assert (retention and Path(retention["file"]).read_bytes()) == (retention_chart(home, week) or None)
    assert sorted((d.via, d.status, d.external_id) for d in home.rows()) == \
        sorted(("outbox", "sent", str(path)) for path in files)

    second = deliver(home)  # delivered already: nothing new in the outbox
    assert second.success and outbox_files(home.settings, run_id=second.run_id) == []


@pytest.mark.postgres
def test_the_delivery_log_on_postgres(home, new_pg_database, slack):
    url = new_pg_database()
    reports = home.reports()
    env = {**home.env, "ABOS_WAREHOUSE_URL": url}
    load_settings(env).warehouse.upsert("insights.reports", reports, key=["report_id"])
    for _ in range(2):
        assert materialize({**env, **slack_env(slack)}, [DELIVERIES]).success
    rows = DeliveryLog(load_settings(env).warehouse).load(WORKSPACE)
    assert sorted((d.channel, d.via, d.status, d.attempts) for d in rows.values()) == sorted(
        [("email", "outbox", "sent", 1), ("slack", "slack", "sent", 1)] * len(WEEKS))
    assert len(slack.posts(CHANNEL)) == len(WEEKS)
    assert all(d.sent_at is not None and d.sent_at.tzinfo is not None for d in rows.values())


# --- operator alerts -----------------------------------------------------------------------------


def test_operator_alerts_go_to_the_operator_channel_or_name_the_missing_setting(tmp_path, slack):
    from pipelines.deliver.alerts import alert_operator
    from pipelines.deliver.errors import DeliveryError

    slack.add_channel("#ops")
    env = {"ABOS_HOME": str(tmp_path), "ABOS_SLACK_BASE_URL": slack.base_url, "ABOS_OPERATOR_SLACK_CHANNEL": "#ops",
           "ABOS_OPERATOR_SLACK_TOKEN_ENV": "OPS_TOKEN", "OPS_TOKEN": TOKEN}
    where = alert_operator(load_settings(env), "Run failed: weekly_report", "step deliver__reports failed")
    (post,) = slack.posts("#ops")
    assert where == f"slack:{slack.channel_id('#ops')}/{post['ts']}"
    assert post["blocks"][0]["text"]["text"] == "Run failed: weekly_report"
    assert "step deliver__reports failed" in post["text"]

    with pytest.raises(DeliveryError, match="OPS_TOKEN"):
        alert_operator(load_settings({**env, "OPS_TOKEN": ""}), "t", "x")
    slack.add_channel("#closed", member=False)
    with pytest.raises(DeliveryError, match="not_in_channel.*ABOS_OPERATOR_SLACK_CHANNEL"):
        alert_operator(load_settings({**env, "ABOS_OPERATOR_SLACK_CHANNEL": "#closed"}), "t", "x")
    assert not (tmp_path / "outbox").exists()
