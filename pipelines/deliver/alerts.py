"""Operator alerts (e.g. a failed run): a Slack message to the operator channel, or an outbox file."""

from __future__ import annotations

from datetime import datetime, timezone

from slack_sdk.errors import SlackApiError

from pipelines.deliver import outbox, slack
from pipelines.deliver.errors import DeliveryError
from pipelines.settings import Settings


def alert_operator(settings: Settings, title: str, text: str) -> str:
    """Post an alert to ABOS_OPERATOR_SLACK_CHANNEL, or write it to the outbox when no channel is set.

    Returns:
        Where it went: "slack:<channel id>/<ts>", or the outbox file's path.

    Raises:
        DeliveryError: the channel is set but its token is not, or Slack refused the post; the
            message names the setting to fix.
    """
    delivery = settings.delivery
    message = {
        "channel": delivery.operator_channel or "",
        # Alerts quote errors, which may quote data: escaped, nothing in them becomes a mention or a link.
        "text": slack.escape(f"{title}\n{text}")[:3000],
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
                   {"type": "section",
                    "text": {"type": "mrkdwn", "text": slack.escape(text)[:slack.SECTION_TEXT]}}],
    }
    if delivery.operator_channel is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        return str(outbox.write_json(outbox.operator_path(settings, stamp, title), {"chat.postMessage": message}))
    if delivery.operator_token is None:
        raise DeliveryError(f"operator alerts: ABOS_OPERATOR_SLACK_CHANNEL is set but {delivery.operator_token_env}, "
                            "which should hold its bot token, is not")
    try:
        response = slack.client(settings, delivery.operator_token).chat_postMessage(**message)
    except SlackApiError as exc:
        raise slack.slack_error(exc, "operator alerts", delivery.operator_channel,
                                channel_setting="ABOS_OPERATOR_SLACK_CHANNEL",
                                token_setting=delivery.operator_token_env) from None
    return f"slack:{response['channel']}/{response['ts']}"
