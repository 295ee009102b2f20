"""Slack: a report as a Block Kit message with its trend chart, posted exactly once through slack-sdk.

The message carries its delivery's idempotency key in its `metadata` (event_payload), so a run that
does not know whether an earlier attempt posted can find out with `conversations.history` instead
of posting again. The chart is uploaded with `files_upload_v2` into the message's thread.

Retries: a 429 means Slack did not do the call, so slack-sdk's `RateLimitErrorRetryHandler` retries
every method after Retry-After. A dropped connection, a timeout or a 5xx leaves a send's outcome
unknown (Slack may have stored the post and lost only its answer), so slack-sdk retries only reads
after one (`ReadRetryHandler`). `post_report` retries a send itself, each time after looking up
whether the lost one got through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from pipelines.deliver.errors import DeliveryError
from pipelines.insights.reports import opportunity_line
from pipelines.insights.wording import Wording
from pipelines.settings import Settings

EVENT_TYPE = "abos_weekly_report"  # metadata event_type of report messages
TIMEOUT_SECONDS = 30
RATE_LIMIT_RETRIES = 3
CONNECTION_RETRIES = 2  # per call for reads; per post or upload, each after a lookup, for sends
# Methods that change nothing, so repeating one after a lost answer cannot duplicate anything.
# files.getUploadURLExternal only reserves an upload: a file shows nowhere until it is completed.
READ_METHODS = frozenset({"auth.test", "conversations.history", "conversations.replies", "conversations.list",
                          "files.getUploadURLExternal"})
FIELDS_PER_SECTION = 10  # Block Kit's limit
MAX_OPPORTUNITIES = 3  # the report file and the email list TOP_OPPORTUNITIES; the table keeps them all
MAX_ANOMALIES = 8  # a message holds at most 50 blocks; the email and the report file list every one
SECTION_TEXT = 2900  # Block Kit allows 3000 characters in a section's text
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# What Slack's error codes mean for the person fixing the configuration.
HINTS = {
    "invalid_auth": "the bot token in {token} is not valid",
    "not_authed": "no bot token was sent; set {token}",
    "token_revoked": "the bot token in {token} was revoked",
    "account_inactive": "the bot token in {token} belongs to a deactivated app",
    "channel_not_found": "channel {channel} ({channel_setting}) does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of {channel} ({channel_setting}); invite it with /invite",
    "is_archived": "channel {channel} ({channel_setting}) is archived",
    "missing_scope": "the bot token in {token} lacks a scope this needs (chat:write, files:write, "
                     "channels:history, channels:read)",
}


class ReadRetryHandler(ConnectionErrorRetryHandler):
    """slack-sdk's retry after a dropped connection, for READ_METHODS only: a send is never repeated blindly."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        method = urlsplit(request.url).path.rsplit("/", 1)[-1]
        return method in READ_METHODS and super()._can_retry(state=state, request=request, response=response,
                                                             error=error)


def client(settings: Settings, token: str) -> WebClient:
    """A WebClient on the configured base URL; it retries rate limits, and reads after a dropped connection."""
    return WebClient(
        token=token,
        base_url=settings.delivery.slack_base_url,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[ReadRetryHandler(max_retry_count=CONNECTION_RETRIES),
                        RateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)],
    )


def outcome_unknown(error: Exception) -> bool:
    """Whether a failed call may still have been done: no answer, or a 5xx; not a Slack error code or a 429."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", None)
        return status is None or status >= 500
    return True


def slack_error(exc: SlackApiError, who: str, channel: str, *, channel_setting: str, token_setting: str) -> DeliveryError:
    """A DeliveryError that says what Slack's error code means and which setting to fix."""
    code = exc.response.get("error", "unknown_error") if exc.response is not None else "unknown_error"
    hint = HINTS.get(code, "Slack refused the request")
    text = hint.format(token=token_setting, channel=channel, channel_setting=channel_setting)
    return DeliveryError(f"{who}: Slack error {code}: {text}")


def report_message(facts: dict[str, Any], summary: str | None, *, channel: str, key: str,
                   report_id: str) -> dict[str, Any]:
    """The chat.postMessage arguments of a report: Block Kit blocks, a fallback text and metadata."""
    title = report_title(facts)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(_period(facts))}]},
    ]
    if summary:
        blocks.append(_section(escape(summary)))
    fields = [_kpi_field(metric) for metric in facts["metrics"]]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start:start + FIELDS_PER_SECTION]})
    wording = Wording.of(facts)
    if facts["movers"]:
        blocks.append(_section(_movers_text(facts["movers"], wording)))
    if facts.get("outlook"):
        blocks.append(_section("\n".join([f"*{escape(wording.say('outlook'))}*"]
                                         + [escape(item["display"]["line"]) for item in facts["outlook"]])))
    blocks.append({"type": "divider"})
    anomalies = facts["anomalies"]
    heading = wording.say("slack.anomalies", count=len(anomalies)) if anomalies else wording.say("slack.no_anomalies")
    blocks.append(_section(heading))
    blocks += [_section(_anomaly_text(anomaly, wording)) for anomaly in anomalies[:MAX_ANOMALIES]]
    if len(anomalies) > MAX_ANOMALIES:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       wording.say("slack.more", count=len(anomalies) - MAX_ANOMALIES)}]})
    if facts.get("opportunities"):
        blocks.append({"type": "divider"})
        lines = [wording.say("slack.opportunities")]
        for item in facts["opportunities"][:MAX_OPPORTUNITIES]:
            lines += [f"{item['rank']}. {escape(opportunity_line(item, wording))}", f"    → {escape(item['action'])}"]
        blocks.append(_section("\n".join(lines)))
    fallback = f"{title}: {summary}" if summary else title
    return {
        "channel": channel,
        # Notifications and clients without blocks show `text`, which Slack parses like mrkdwn.
        "text": escape(fallback)[:SECTION_TEXT],
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"idempotency_key": key, "report_id": report_id}},
    }


def chart_upload(facts: dict[str, Any]) -> dict[str, str]:
    """files_upload_v2 arguments (besides the file and where it goes) for a report's trend chart."""
    week, workspace, wording = facts["week"]["label"], facts["workspace"], Wording.of(facts)
    labels = {metric["name"]: metric["label"] for metric in facts["metrics"]}
    return {"filename": f"{workspace['id']}-{week}-trend.png",
            "title": wording.say("slack.chart_title", name=workspace["name"], week=week),
            "alt_txt": wording.say("slack.chart_alt", metrics=", ".join(labels.get(name, name) for name in
                                                                       facts["headline"]), weeks=len(facts["weeks"]))}


def retention_upload(facts: dict[str, Any]) -> dict[str, str]:
    """files_upload_v2 arguments for a report's retention chart (the cohorts' retention curves)."""
    week, workspace, wording = facts["week"]["label"], facts["workspace"], Wording.of(facts)
    title = wording.say("retention.title", name=workspace["name"],
                        what=wording.say(f"retention.{workspace['vertical']}"))
    return {"filename": f"{workspace['id']}-{week}-retention.png", "title": title, "alt_txt": title}


def post_report(slack: WebClient, message: dict[str, Any], chart: bytes, upload: dict[str, str], *,
                maybe_posted: bool, since: float, more: tuple[tuple[bytes, dict[str, str]], ...] = ()) -> str:
    """Post a report message and upload its charts into its thread, unless an earlier attempt did.

    Args:
        slack: the workspace's client.
        message: `report_message(...)`.
        chart: PNG bytes.
        upload: `chart_upload(...)`.
        more: further charts for the thread, as (PNG bytes, upload arguments): the retention chart.
        maybe_posted: an earlier attempt may have posted (the delivery log cannot tell): look the
            message up by its idempotency key, and its chart in its thread, before sending either.
        since: Unix time before the first attempt; the history lookup reads from there on.

    Returns:
        "<channel id>/<message ts>".

    Raises:
        SlackApiError: Slack refused a call (after slack-sdk's retries).
        Exception: a call's outcome stayed unknown after CONNECTION_RETRIES lookups and retries; the
            next attempt looks up again before it sends.
    """
    key = message["metadata"]["event_payload"]["idempotency_key"]
    channel_id = ts = None

    def posted() -> str | None:
        nonlocal channel_id
        channel_id = channel_id or channel_id_of(slack, message["channel"])
        return find_posted(slack, channel_id, key, since)

    def post() -> str:
        nonlocal channel_id
        response = slack.chat_postMessage(**message)
        channel_id = response["channel"]
        return response["ts"]

    ts = posted() if maybe_posted else None
    files = ((chart, upload), *more)
    shown = [ts is not None and _has_file(slack, channel_id, ts, each["filename"]) for _, each in files]
    if ts is None:
        ts = send_once(post, posted)
    for (data, each), posted_before in zip(files, shown):
        if not posted_before:
            send_once(lambda data=data, each=each: slack.files_upload_v2(channel=channel_id, thread_ts=ts,
                                                                         file=data, **each),
                      lambda each=each: _has_file(slack, channel_id, ts, each["filename"]) or None)
    return f"{channel_id}/{ts}"


Sent = TypeVar("Sent")


def send_once(send: Callable[[], Sent], lookup: Callable[[], Sent | None]) -> Sent:
    """`send()`, retried after an unknown outcome only when `lookup()` finds that it did not get through.

    Returns:
        What `send` returned, or what `lookup` found of a send whose answer was lost.
    """
    retries = CONNECTION_RETRIES
    while True:
        try:
            return send()
        except Exception as error:  # noqa: BLE001 - only an unknown outcome is looked up, the rest re-raised
            if not outcome_unknown(error) or retries == 0:
                raise
        retries -= 1
        found = lookup()
        if found is not None:
            return found


def find_posted(slack: WebClient, channel_id: str, key: str, since: float) -> str | None:
    """The ts of the report message carrying idempotency key `key`, posted since `since`, or None."""
    cursor = None
    while True:
        page = slack.conversations_history(channel=channel_id, oldest=f"{since:.6f}", limit=200,
                                           include_all_metadata=True, cursor=cursor)
        for message in page.get("messages", []):
            metadata = message.get("metadata") or {}
            if metadata.get("event_type") == EVENT_TYPE and \
                    (metadata.get("event_payload") or {}).get("idempotency_key") == key:
                return message["ts"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None


def channel_id_of(slack: WebClient, channel: str) -> str:
    """The ID of a channel configured by name ("#analytics") or already by ID."""
    if CHANNEL_ID.match(channel):
        return channel
    name, cursor = channel.lstrip("#"), None
    while True:
        page = slack.conversations_list(types="public_channel,private_channel", exclude_archived=True,
                                        limit=200, cursor=cursor)
        for each in page.get("channels", []):
            if each.get("name") == name:
                return each["id"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise SlackApiError("channel not found", {"ok": False, "error": "channel_not_found"})


def _has_file(slack: WebClient, channel_id: str, ts: str, filename: str) -> bool:
    replies = slack.conversations_replies(channel=channel_id, ts=ts, limit=200)
    return any(file.get("name") == filename for message in replies.get("messages", [])
               for file in message.get("files") or [])


def report_title(facts: dict[str, Any]) -> str:
    """"Weekly report: <name>, <week>" in the report's language, the Slack header and the email subject."""
    return Wording.of(facts).say("title", name=facts["workspace"]["name"], week=facts["week"]["label"])


def _period(facts: dict[str, Any]) -> str:
    week = facts["week"]
    return Wording.of(facts).say("slack.period", start=week["start"], end=week["end"],
                               timezone=facts["workspace"]["timezone"], previous=facts["previous_week"]["label"])


def _kpi_field(metric: dict[str, Any]) -> dict[str, str]:
    shown = metric["display"]
    marker = {"good": ":large_green_circle:", "bad": ":red_circle:"}.get(metric["outcome"], ":white_circle:")
    return {"type": "mrkdwn", "text": f"*{escape(metric['label'])}*\n{escape(shown['current'])}  "
                                      f"{marker} {escape(shown['change'])} ({escape(shown['delta'])})"}


def _movers_text(movers: list[dict[str, Any]], wording: Wording) -> str:
    """The top movers, each with what to do about it, as in the report."""
    lines = [f"*{escape(wording.say('movers'))}*"]
    for mover in movers:
        shown = mover["display"]
        line = wording.say("mover", label=mover["label"], change=shown["change"], delta=shown["delta"],
                           outcome=shown.get("outcome") or mover["outcome"])
        lines.append(f"{mover['rank']}. {escape(line)}")
        if mover.get("action"):
            lines.append(f"    → {escape(mover['action'])}")
    return "\n".join(lines)


def _anomaly_text(anomaly: dict[str, Any], wording: Wording) -> str:
    shown = anomaly["display"]
    lines = [wording.say("slack.anomaly", label=escape(anomaly["label"]), date=anomaly["date"],
                         weekday=anomaly["weekday"], value=escape(shown["value"]), expected=escape(shown["expected"]),
                         band=escape(shown["band"]), direction=escape(shown.get("direction", anomaly["direction"])),
                         severity=escape(shown.get("severity", anomaly["severity"])))]
    lines += [f"• {escape(driver['phrase'])}" for driver in anomaly["drivers"]]
    if anomaly.get("action"):
        lines.append(f"→ {escape(anomaly['action'])}")
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_TEXT]}}


def escape(text: str) -> str:
    """Slack mrkdwn's control characters (&, <, >) as entities: no text becomes a mention (`<!channel>`) or link."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
