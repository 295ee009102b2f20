"""The retry sensor: a delivery that failed with attempts left is tried again within hours, not next week.

Every CHECK_EVERY_SECONDS it reads `insights.deliveries` and requests a `deliver/reports` run for each
workspace with a delivery due again: one that failed (with attempts left) longer than
`retry_delay(attempts)` ago (15 minutes, 1 hour, 4 hours, then every 6 hours), or one left
`pending` by a run that died, once that run's lease has expired. The run takes the lease, looks up
what a lost attempt may have sent, and sends only what is missing (docs/delivery.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg

from pipelines.deliver.assets import DELIVERIES
from pipelines.deliver.lease import lease_ttl
from pipelines.deliver.log import Delivery, DeliveryLog, now
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces

RETRY_SENSOR = "retry_failed_deliveries"
CHECK_EVERY_SECONDS = 300
FIRST_RETRY = timedelta(minutes=15)
BACKOFF = 4
LONGEST_WAIT = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    """How long after its last attempt a delivery that failed `attempts` times is tried again."""
    return min(FIRST_RETRY * BACKOFF ** max(attempts - 1, 0), LONGEST_WAIT)


def due_again(rows: list[Delivery], *, max_attempts: int, lease: timedelta, at: datetime) -> list[Delivery]:
    """The deliveries among `rows` that a run should try again at `at`."""
    due = []
    for row in rows:
        if row.last_attempt_at is None:
            continue
        if row.status == "failed" and row.attempts < max_attempts:
            waited = retry_delay(row.attempts)
        elif row.status == "pending":  # its run died mid-send, or is still sending within its lease
            waited = lease
        else:
            continue
        if at - row.last_attempt_at >= waited:
            due.append(row)
    return due


def retry_sensor(workspaces: Workspaces, settings: Settings) -> dg.SensorDefinition:
    """The sensor that requests `deliver/reports` for workspaces with deliveries due again."""

    @dg.sensor(name=RETRY_SENSOR, job_name="weekly_report", minimum_interval_seconds=CHECK_EVERY_SECONDS,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Retry failed deliveries after 15 minutes, 1 hour, 4 hours, then every 6 hours, "
                           "until ABOS_DELIVERY_MAX_ATTEMPTS.")
    def retry_failed_deliveries(context: dg.SensorEvaluationContext) -> Iterator[dg.RunRequest]:
        at = now()
        # The cursor keeps when each workspace was last asked for, so a run still on its way is not asked twice.
        asked = json.loads(context.cursor or "{}")
        rows = DeliveryLog(settings.warehouse).unfinished()
        due = due_again(rows, max_attempts=settings.delivery.max_attempts, lease=lease_ttl(settings), at=at)
        for workspace_id in sorted({row.workspace_id for row in due} & set(workspaces.ids)):
            if workspace_id in asked and at - datetime.fromisoformat(asked[workspace_id]) < FIRST_RETRY:
                continue
            asked[workspace_id] = at.isoformat()
            mine = [row for row in due if row.workspace_id == workspace_id]
            context.log.info(f"{workspace_id}: {len(mine)} delivery(ies) due again: "
                             + ", ".join(f"{row.report_id} → {row.channel} {row.recipient}" for row in mine))
            yield dg.RunRequest(partition_key=workspace_id, asset_selection=[DELIVERIES],
                                tags={"abos/retry": "deliveries"})
        context.update_cursor(json.dumps(asked))

    return retry_failed_deliveries
