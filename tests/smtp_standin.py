"""A real SMTP server for tests (aiosmtpd) that records what it accepted and can refuse on demand.

    with SmtpStandIn() as smtp:
        smtp.refuse(times=1)            # the next message gets "451 try again later"
        smtp.answer_late(40, times=1)   # the next message is stored, and its 250 comes 40 s later
        ...
        assert len(smtp.messages) == 1  # email.message.EmailMessage objects, as received
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class SmtpStandIn:
    """aiosmtpd on 127.0.0.1 (plain SMTP, no AUTH): point ABOS_SMTP_HOST/PORT at it with security none."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (mail from, rcpt tos) of accepted messages
        self.refused = 0
        self._refusals = 0
        self._late: list[float] = []
        self._lock = threading.Lock()
        with socket.socket() as probe:  # aiosmtpd needs a concrete port to check it started
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def refuse(self, times: int = 1_000_000) -> None:
        """Answer the next `times` messages' DATA with 451 (a temporary failure): nothing is accepted."""
        with self._lock:
            self._refusals = times

    def answer_late(self, seconds: float, times: int = 1_000_000) -> None:
        """Store the next `times` messages, then wait `seconds` before answering 250: a slow server, or
        (past the client's timeout) an accepted message whose acceptance the client never hears."""
        with self._lock:
            self._late = [seconds] * times

    @property
    def env(self) -> dict[str, str]:
        """The settings that send through this server."""
        return {"ABOS_SMTP_HOST": "127.0.0.1", "ABOS_SMTP_PORT": str(self.port), "ABOS_SMTP_SECURITY": "none"}

    async def handle_DATA(self, _server, _session, envelope) -> str:  # noqa: N802  (aiosmtpd's hook name)
        with self._lock:
            if self._refusals:
                self._refusals -= 1
                self.refused += 1
                return "451 4.3.0 stand-in: try again later"
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
            late = self._late.pop(0) if self._late else 0
        await asyncio.sleep(late)
        return "250 2.0.0 OK: queued"

    def __enter__(self) -> SmtpStandIn:
        self._controller.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._controller.stop()
