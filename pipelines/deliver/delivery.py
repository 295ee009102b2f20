"""Deliver one workspace's undelivered reports to each of its targets, exactly once (docs/delivery.md).

For every report in `insights.reports` and every channel of the workspace's `notifications`, a run
first takes that report and channel's lease (`lease.py`), so no other run sends it meanwhile, then
reads the delivery log's rows for it, which decide what to do. An attempt writes its row as
`pending` first, then sends, then records the outcome; the `after_send` seam runs between the last
two, which is where a crash would leave a `pending` row behind. Such a row is reconciled by the
next run:

- Slack: the message carries its idempotency key in its metadata; the next attempt looks it up
  with conversations.history (and the chart in its thread) and sends only what is missing.
- email over SMTP: no server can be asked, so the row becomes `unconfirmed` and is not resent.
  So does an email whose data reached the server without an answer (`email.UnconfirmedSend`).
- outbox: writing the file again replaces it, so the next attempt simply writes it again.

Every other failure is recorded as `failed` with its reason and retried (by the retry sensor, or
the next run) until ABOS_DELIVERY_MAX_ATTEMPTS attempts have failed.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError

from pipelines.deliver import email, outbox, slack
from pipelines.deliver.errors import DeliveryError
from pipelines.deliver.lease import Leases, lease_ttl
from pipelines.deliver.log import Delivery, DeliveryLog, now
from pipelines.insights.reports import RETENTION_FILE
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspace

# Slack's history is read from a little before the first attempt, in case the clocks disagree.
HISTORY_MARGIN = timedelta(minutes=10)
UNCONFIRMED = ("a run stopped after it began sending this email and before it recorded the outcome; "
               "whether the SMTP server accepted it is unknown, so it is not resent automatically: look for its "
               "Message-ID (external_id) in the server's log (docs/delivery.md, unconfirmed emails)")


@dataclass(frozen=True)
class Target:
    """Where one copy of a report goes."""

    channel: str  # "slack" or "email"
    recipient: str  # the Slack channel or the email address
    via: str  # "slack", "smtp" or "outbox"


@dataclass(frozen=True)
class ReportContent:
    """What a delivery sends, read from the files `insights/reports` wrote."""

    report_id: str
    week: str
    summary: str | None
    facts: dict[str, Any]
    text: str
    chart: bytes
    chart_path: Path
    retention: bytes | None = None  # the retention chart, written next to the trend chart when the report has one


def targets(settings: Settings, workspace: Workspace, env: dict[str, str] | None = None) -> list[Target]:
    """The workspace's targets. Email without ABOS_SMTP_HOST goes to the outbox; so does Slack without
    its token when the workspace says `if_token_unset: outbox` (else that delivery fails, naming the variable)."""
    found = []
    if workspace.notifications.slack is not None:
        target = workspace.notifications.slack
        to_outbox = target.token(env) is None and target.if_token_unset == "outbox"
        found.append(Target("slack", target.channel, "outbox" if to_outbox else "slack"))
    if workspace.notifications.email is not None:
        via = "smtp" if settings.delivery.smtp.host else "outbox"
        found.extend(Target("email", address, via) for address in workspace.notifications.email.to)
    return found


def deliver_workspace(settings: Settings, workspace: Workspace, *, run_id: str | None = None,
                      after_send: Callable[[Delivery], None] | None = None,
                      env: dict[str, str] | None = None,
                      notice: Callable[[str], None] = lambda _message: None,
                      warehouse: Warehouse | None = None) -> list[Delivery]:
    """Deliver every report of `workspace` that some target has not had yet.

    Args:
        settings: delivery settings and the warehouse.
        workspace: the workspace and its notification targets.
        run_id: recorded on each row this call touches (the Dagster run).
        after_send: called after a send succeeded and before it is recorded. A real seam: tests
            kill the process here to prove a crash in that window does not lead to a second send.
        env: where workspace bot tokens are read (default: the process environment).
        notice: told about each report and channel left to another run that holds its lease.
        warehouse: the Dagster resource when an asset delivers (default: the settings' warehouse).

    Returns:
        The rows this call touched, in their final state.
    """
    warehouse = warehouse or settings.warehouse
    log = DeliveryLog(warehouse)
    log.create()
    leases = Leases(warehouse, lease_ttl(settings))
    every_target = targets(settings, workspace, env)
    touched = []
    for report in _reports(warehouse, workspace.id):
        for channel in dict.fromkeys(target.channel for target in every_target):
            lease = leases.take(workspace.id, report["week"], channel)
            if lease is None:
                holder = leases.holder(workspace.id, report["week"], channel)
                notice(f"{report['report_id']} → {channel}: left to the run that holds its lease"
                       + (f" ({holder[0]}, until {holder[1]:%Y-%m-%d %H:%M} UTC)" if holder else ""))
                continue
            try:
                # Read under the lease: what another run did before we took it is in these rows.
                known = log.load(workspace.id, report_id=report["report_id"], channel=channel)
                for target in (t for t in every_target if t.channel == channel):
                    delivery = known.get((report["report_id"], target.channel, target.recipient)) or Delivery(
                        report_id=report["report_id"], workspace_id=workspace.id, week=report["week"],
                        channel=target.channel, recipient=target.recipient)
                    if not _due(delivery, settings.delivery.max_attempts):
                        continue
                    if not lease.renew():  # it expired and another run took it: that run sends the rest
                        notice(f"{report['report_id']} → {channel}: lease lost to another run; it sends the rest")
                        break
                    touched.append(_attempt(settings, workspace, target, report, delivery, log, run_id,
                                            after_send, env))
            finally:
                lease.release()
    return touched


def _due(delivery: Delivery, max_attempts: int) -> bool:
    if delivery.status in ("sent", "unconfirmed"):
        return False
    return not (delivery.status == "failed" and delivery.attempts >= max_attempts)


def _attempt(settings: Settings, workspace: Workspace, target: Target, report: dict[str, Any], delivery: Delivery,
             log: DeliveryLog, run_id: str | None, after_send, env) -> Delivery:
    if delivery.status == "pending" and delivery.via == "smtp":
        message_id = email.message_id(delivery.key, settings.delivery.smtp.sender)
        return log.save(delivery.replace(status="unconfirmed", last_error=UNCONFIRMED, run_id=run_id,
                                         external_id=message_id))
    # An earlier attempt may have got through before it failed (also one an operator reset to attempts = 0).
    maybe_delivered = delivery.attempts > 0 or delivery.first_attempt_at is not None
    started = now()
    delivery = log.save(delivery.replace(status="pending", via=target.via, attempts=delivery.attempts + 1,
                                         run_id=run_id, first_attempt_at=delivery.first_attempt_at or started,
                                         last_attempt_at=started))
    try:
        content = _content(report)  # inside the attempt: unreadable files are a recorded failure too
        external_id = _send(settings, workspace, target, content, delivery, maybe_delivered, env)
    except email.UnconfirmedSend as exc:
        reason = f"workspace {workspace.id!r}: email to {target.recipient}: {exc}"
        return log.save(delivery.replace(status="unconfirmed", external_id=exc.message_id, last_error=reason))
    except Exception as exc:  # noqa: BLE001 - every failure is recorded with its reason, never dropped
        return log.save(delivery.replace(status="failed", last_error=_reason(exc, settings, workspace, target)))
    if after_send is not None:
        after_send(delivery)
    return log.save(delivery.replace(status="sent", external_id=external_id, sent_at=now(), last_error=None))


def _send(settings: Settings, workspace: Workspace, target: Target, content: ReportContent, delivery: Delivery,
          maybe_delivered: bool, env) -> str:
    """Send one copy; returns the Slack ts, the Message-ID or the outbox path."""
    folder = (settings, workspace.id, content.week)
    if target.channel == "slack":
        message = slack.report_message(content.facts, content.summary, channel=target.recipient, key=delivery.key,
                                       report_id=content.report_id)
        upload = slack.chart_upload(content.facts)
        more = ((content.retention, slack.retention_upload(content.facts)),) if content.retention is not None else ()
        if target.via == "outbox":
            where = {"channel": "<the posted message's channel>", "thread_ts": "<the posted message's ts>"}
            files = {**upload, **where, "file": str(content.chart_path)}
            calls = {"chat.postMessage": message, "files_upload_v2": files}
            if more:
                calls["files_upload_v2 (retention)"] = {**more[0][1], **where,
                                                        "file": str(content.chart_path.with_name(RETENTION_FILE))}
            return str(outbox.write_json(outbox.slack_path(*folder, target.recipient), calls))
        token = workspace.notifications.slack.token(env)
        if token is None:
            variable = workspace.notifications.slack.bot_token_env
            raise DeliveryError(f"workspace {workspace.id!r}: {variable} (notifications.slack.bot_token_env) is "
                                "not set: set it to the bot token, or set notifications.slack.if_token_unset: outbox")
        client = slack.client(settings, token)
        since = (delivery.first_attempt_at - HISTORY_MARGIN).timestamp()
        return slack.post_report(client, message, content.chart, upload, maybe_posted=maybe_delivered, since=since,
                                 more=more)
    message = email.report_email(content.facts, content.summary, content.text, content.chart,
                                 sender=settings.delivery.smtp.sender, recipient=target.recipient, key=delivery.key,
                                 retention=content.retention)
    if target.via == "outbox":
        return str(outbox.write_file(outbox.email_path(*folder, target.recipient), bytes(message)))
    return email.send(settings.delivery.smtp, message)


def _reports(warehouse: Warehouse, workspace_id: str) -> list[dict[str, Any]]:
    if not warehouse.table_exists("insights.reports"):
        return []
    rows = warehouse.query("select report_id, week, summary, facts_path, text_path, chart_path "
                           "from insights.reports where workspace_id = %s order by week", [workspace_id])
    return rows.to_dict("records")


def _content(report: dict[str, Any]) -> ReportContent:
    chart_path = Path(report["chart_path"])
    retention_path = chart_path.with_name(RETENTION_FILE)
    try:
        return ReportContent(
            report_id=report["report_id"],
            week=report["week"],
            summary=report["summary"] or None,
            facts=json.loads(Path(report["facts_path"]).read_text()),
            text=Path(report["text_path"]).read_text(),
            chart=chart_path.read_bytes(),
            chart_path=chart_path,
            retention=retention_path.read_bytes() if retention_path.exists() else None,
        )
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"report {report['report_id']}: cannot read its files ({exc}); "
                            "materialize insights/reports again") from exc


def _reason(exc: Exception, settings: Settings, workspace: Workspace, target: Target) -> str:
    """Why an attempt failed, naming the workspace and the setting to look at."""
    who = f"workspace {workspace.id!r}"
    if isinstance(exc, SlackApiError):
        variable = workspace.notifications.slack.bot_token_env
        return str(slack.slack_error(exc, who, target.recipient, channel_setting="notifications.slack.channel",
                                     token_setting=f"{variable} (notifications.slack.bot_token_env)"))
    if isinstance(exc, (smtplib.SMTPException, OSError)) and target.via == "smtp":
        smtp = settings.delivery.smtp
        return (f"{who}: email to {target.recipient} was not accepted by {smtp.host}:{smtp.port} "
                f"(ABOS_SMTP_HOST, ABOS_SMTP_PORT, ABOS_SMTP_SECURITY): {type(exc).__name__}: {exc}")
    if isinstance(exc, DeliveryError):
        return str(exc)
    return f"{who}: {target.channel} to {target.recipient} via {target.via}: {type(exc).__name__}: {exc}"
