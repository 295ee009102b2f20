"""Email: a report as multipart/alternative (text + HTML with the chart inline by Content-ID), over SMTP.

The Message-ID is derived from the delivery's idempotency key, so every attempt of one delivery
carries the same ID (a mail system that de-duplicates by Message-ID drops a repeat).
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from contextlib import suppress
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from pipelines.deliver.slack import report_title
from pipelines.insights.reports import CHART_CID, CHART_FILE, render_html
from pipelines.settings import SmtpSettings

TIMEOUT_SECONDS = 30


def message_id(key: str, sender: str) -> str:
    """A Message-ID that depends only on the idempotency key and the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def report_email(facts: dict[str, Any], summary: str | None, text: str, chart: bytes, *, sender: str,
                 recipient: str, key: str) -> EmailMessage:
    """The report email: text part, HTML part, and the chart as an inline image the HTML shows by CID.

    Args:
        facts: the report's facts JSON.
        summary: the summary shown at the top of the HTML (the text already holds it).
        text: the plain-text report (report.txt).
        chart: the trend chart PNG.
        sender: From.
        recipient: To (one address: each recipient is its own delivery).
        key: the delivery's idempotency key (Message-ID, X-ABOS-Delivery).
    """
    message = EmailMessage()
    message["Subject"] = report_title(facts)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(key, sender)
    message["X-ABOS-Delivery"] = key
    message.set_content(text)
    message.add_alternative(render_html(facts, summary=summary, chart_src=f"cid:{CHART_CID}"), subtype="html")
    html = message.get_payload()[1]
    html.add_related(chart, maintype="image", subtype="png", cid=f"<{CHART_CID}>", filename=CHART_FILE,
                     disposition="inline")
    return message


def send(smtp: SmtpSettings, message: EmailMessage) -> str:
    """Send `message` through the configured server; returns its Message-ID once the server accepted it.

    Raises:
        smtplib.SMTPException, OSError: the server was unreachable or refused the message; it was
            not accepted, so trying again later cannot duplicate it.
    """
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS, context=context)
    else:
        server = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS)
    try:
        if smtp.security == "starttls":
            server.starttls(context=context)
        if smtp.user:
            server.login(smtp.user, smtp.password or "")
        server.send_message(message)  # raises unless the server accepted it for the recipient
    finally:
        # Once the message is accepted, a failing QUIT must not turn the delivery into a failure.
        with suppress(smtplib.SMTPException, OSError):
            server.quit()
    return message["Message-ID"]
