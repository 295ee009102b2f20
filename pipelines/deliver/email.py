"""Email: a report as multipart/alternative (text + HTML with the chart inline by Content-ID), over SMTP.

The Message-ID is derived from the delivery's idempotency key, so every attempt of one delivery
carries the same ID (a mail system that de-duplicates by Message-ID drops a repeat).

A send fails in one of two ways. Before the end of the message's data reached the server, or with
the server's own refusal, nothing was accepted: `send` raises the smtplib or socket error and the
delivery may be retried. After the end of the data was sent, a lost connection or no answer within
ABOS_SMTP_DATA_TIMEOUT_SECONDS leaves it unknown whether the server accepted the message: `send`
raises `UnconfirmedSend`, and the message is never resent without a lookup or an operator's decision.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from contextlib import suppress
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from pipelines.deliver.errors import DeliveryError
from pipelines.deliver.slack import report_title
from pipelines.insights.reports import CHART_CID, CHART_FILE, RETENTION_FILE, render_html
from pipelines.settings import SmtpSettings

END_OF_DATA = b"\r\n.\r\n"  # what smtplib sends last in DATA; the server answers it with acceptance


class UnconfirmedSend(DeliveryError):
    """The server received the whole message, and whether it accepted it is unknown."""

    def __init__(self, text: str, message_id: str) -> None:
        super().__init__(text)
        self.message_id = message_id


def message_id(key: str, sender: str) -> str:
    """A Message-ID that depends only on the idempotency key and the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def report_email(facts: dict[str, Any], summary: str | None, text: str, chart: bytes, *, sender: str,
                 recipient: str, key: str, retention: bytes | None = None) -> EmailMessage:
    """The report email: text part, HTML part, and the chart as an inline image the HTML shows by CID;
    the retention chart, when the report has one, as an attached PNG.

    Args:
        facts: the report's facts JSON.
        summary: the summary shown at the top of the HTML (the text already holds it).
        text: the plain-text report (report.txt).
        chart: the trend chart PNG.
        sender: From.
        recipient: To (one address: each recipient is its own delivery).
        key: the delivery's idempotency key (Message-ID, X-ABOS-Delivery).
        retention: the retention chart PNG (RETENTION_FILE), or None.
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
    if retention is not None:
        message.add_attachment(retention, maintype="image", subtype="png", filename=RETENTION_FILE)
    return message


def send(smtp: SmtpSettings, message: EmailMessage) -> str:
    """Send `message` through the configured server; returns its Message-ID once the server accepted it.

    Raises:
        smtplib.SMTPException, OSError: the server was unreachable or refused the message; it was
            not accepted, so trying again later cannot duplicate it.
        UnconfirmedSend: the whole message went out and no answer came back.
    """
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        server = _SmtpSsl(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
    else:
        server = _Smtp(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    server.data_timeout = smtp.data_timeout_seconds
    try:
        if smtp.security == "starttls":
            server.starttls(context=context)
        if smtp.user:
            server.login(smtp.user, smtp.password or "")
        server.send_message(message)  # raises unless the server accepted it for the recipient
    except OSError as exc:  # smtplib's errors included
        if not server.data_sent or isinstance(exc, smtplib.SMTPResponseException):  # no data, or a refusal
            raise
        raise UnconfirmedSend(
            f"the SMTP server {smtp.host}:{smtp.port} received the whole message, then gave no answer within "
            f"ABOS_SMTP_DATA_TIMEOUT_SECONDS ({smtp.data_timeout_seconds:g} s) or dropped the connection "
            f"({type(exc).__name__}: {exc}); it may have been delivered, so it is not resent automatically: look for "
            f"Message-ID {message['Message-ID']} in the server's log (docs/delivery.md, unconfirmed emails)",
            message["Message-ID"]) from exc
    finally:
        # Once the message is accepted, a failing QUIT must not turn the delivery into a failure.
        with suppress(smtplib.SMTPException, OSError):
            server.quit()
    return message["Message-ID"]


class _EndOfDataWatch:
    """Notes when the end of a message's data went out: from then on, the server may have accepted it.

    It then waits `data_timeout` for the server's answer, as RFC 5321 (4.5.3.2.6) asks of clients.
    """

    data_timeout: float
    data_sent = False

    def send(self, s: bytes | str) -> None:
        super().send(s)  # type: ignore[misc]
        if isinstance(s, bytes) and s.endswith(END_OF_DATA):
            self.data_sent = True
            self.sock.settimeout(self.data_timeout)  # type: ignore[attr-defined]


class _Smtp(_EndOfDataWatch, smtplib.SMTP):
    pass


class _SmtpSsl(_EndOfDataWatch, smtplib.SMTP_SSL):
    pass
