"""Leases in `insights.delivery_leases`: one run at a time sends one report to one channel.

A lease row (workspace_id, week, channel) names its holder (`<host>:<pid>:<random>`) and when it
expires. A run takes the lease before it reads the delivery log's rows of that report and channel,
renews it before each send, and gives it back when it is done. Taking it is one statement (insert
the row, or update it if it is free), so of two runs at once exactly one gets it; the other leaves
that report and channel to the holder.

A lease is free once it has expired, or when its holder ran on this machine and its process is gone
(a killed run), so a crash holds delivery up only when the next run is on another machine.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.deliver.log import LEASE_TABLE as TABLE
from pipelines.deliver.log import now
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse

MINIMUM_TTL = timedelta(minutes=30)
KEY = "workspace_id = %s and week = %s and channel = %s"


def lease_ttl(settings: Settings) -> timedelta:
    """How long a lease lasts unrenewed: longer than any one send (an email may wait for its answer
    for ABOS_SMTP_DATA_TIMEOUT_SECONDS, after a few commands of ABOS_SMTP_TIMEOUT_SECONDS each)."""
    smtp = settings.delivery.smtp
    longest_send = timedelta(seconds=smtp.data_timeout_seconds + 10 * smtp.timeout_seconds)
    return max(MINIMUM_TTL, 2 * longest_send)


@dataclass(frozen=True)
class Lease:
    """A lease this process holds."""

    warehouse: Warehouse
    key: tuple[str, str, str]  # (workspace_id, week, channel)
    holder: str
    ttl: timedelta

    def renew(self) -> bool:
        """Extend the lease; False when it is no longer ours (it expired and another run took it)."""
        return not self.warehouse.query(
            f"update {TABLE} set expires_at = %s where {KEY} and holder = %s returning holder",
            [now() + self.ttl, *self.key, self.holder]).empty

    def release(self) -> None:
        self.warehouse.query(f"delete from {TABLE} where {KEY} and holder = %s returning holder",
                             [*self.key, self.holder])


@dataclass(frozen=True)
class Leases:
    """The lease table of one warehouse."""

    warehouse: Warehouse
    ttl: timedelta

    def take(self, workspace_id: str, week: str, channel: str) -> Lease | None:
        """The lease of one report and channel, or None while another live run holds it."""
        key = (workspace_id, week, channel)
        held = self.warehouse.query(f"select holder from {TABLE} where {KEY}", list(key))
        mine = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # A holder whose process is gone may be replaced now; any other, once the lease expired.
        replaceable = held["holder"].iloc[0] if not held.empty and _dead_here(held["holder"].iloc[0]) else mine
        taken = self.warehouse.query(
            f"insert into {TABLE} as lease (workspace_id, week, channel, holder, expires_at) "
            "values (%s, %s, %s, %s, %s) on conflict (workspace_id, week, channel) do update "
            "set holder = excluded.holder, expires_at = excluded.expires_at "
            "where lease.expires_at < %s or lease.holder = %s returning holder",
            [*key, mine, now() + self.ttl, now(), replaceable])
        return Lease(self.warehouse, key, mine, self.ttl) if not taken.empty else None

    def holder(self, workspace_id: str, week: str, channel: str) -> tuple[str, datetime] | None:
        """Who holds a lease and until when, or None."""
        held = self.warehouse.query(f"select holder, expires_at from {TABLE} where {KEY}",
                                    [workspace_id, week, channel])
        return None if held.empty else (held["holder"].iloc[0], held["expires_at"].iloc[0].to_pydatetime())


def _dead_here(holder: str) -> bool:
    """Whether `holder` ran on this machine in a process that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False
