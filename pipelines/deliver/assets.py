"""The deliver asset, partitioned by workspace: send each undelivered report to every target, and check the log.

`deliver/reports` records every attempt in `insights.deliveries`. When a delivery fails its last
allowed attempt (ABOS_DELIVERY_MAX_ATTEMPTS), or an email becomes `unconfirmed`, the operator has to
act: the run fails after all other targets were tried, so the run-failure alert fires. A failure
with attempts left is retried by the `retry_failed_deliveries` sensor (`sensors.py`). The check
`deliveries_ok` fails while any delivery of the workspace is `failed` (severity ERROR once it has no
attempts left, WARN while it will be retried) or `unconfirmed` (WARN), naming report, channel,
recipient and reason.
"""

import dagster as dg

from pipelines.deliver.delivery import deliver_workspace
from pipelines.deliver.log import Delivery, DeliveryLog
from pipelines.insights.assets import REPORTS
from pipelines.partitions import workspace_partitions
from pipelines.settings import Settings
from pipelines.warehouse import Warehouse
from pipelines.workspaces import Workspaces

DELIVERIES = dg.AssetKey(["deliver", "reports"])


def deliver_assets(workspaces: Workspaces, settings: Settings) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The deliver asset and its check for the workspaces of `workspaces.yaml`."""
    partitions = workspace_partitions(workspaces)
    max_attempts = settings.delivery.max_attempts

    @dg.asset(key=DELIVERIES, group_name="deliver", kinds={"python", "slack", "email"}, partitions_def=partitions,
              deps=[REPORTS])
    def reports(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
        """Send one workspace's undelivered reports to its Slack channel and email recipients (or the outbox)."""
        workspace = workspaces.get(context.partition_key)
        touched = deliver_workspace(settings, workspace, run_id=context.run.run_id, notice=context.log.info,
                                    warehouse=warehouse)
        for delivery in touched:
            line = _line(delivery, max_attempts)
            (context.log.info if delivery.status == "sent" else context.log.warning)(line)
        for_operator = [d for d in touched if d.status == "unconfirmed"
                        or (d.status == "failed" and d.attempts >= max_attempts)]
        if for_operator:
            raise dg.Failure(
                description=f"{len(for_operator)} delivery(ies) of workspace {workspace.id!r} need the operator "
                            "(failed their last attempt, or unconfirmed: docs/delivery.md):\n"
                            + "\n".join(_line(d, max_attempts) for d in for_operator),
                metadata={"failed": sum(d.status == "failed" for d in for_operator),
                          "unconfirmed": sum(d.status == "unconfirmed" for d in for_operator)},
            )
        return dg.MaterializeResult(metadata={
            **{status: sum(d.status == status for d in touched) for status in ("sent", "failed", "unconfirmed")},
            "outbox": dg.MetadataValue.md(
                "\n".join(f"- `{d.external_id}`" for d in touched if d.via == "outbox" and d.status == "sent")
                or "none"),
            "deliveries": dg.MetadataValue.md(_table(touched, max_attempts)),
        })

    @dg.asset_check(asset=DELIVERIES, name="deliveries_ok", partitions_def=partitions,
                    description="No delivery of the workspace is failed or unconfirmed.")
    def deliveries_ok(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        workspace_id = context.partition_key
        rows = list(DeliveryLog(warehouse).load(workspace_id).values())
        problems = [d for d in rows if d.status in ("failed", "unconfirmed")]
        given_up = [d for d in problems if d.status == "failed" and d.attempts >= max_attempts]
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.ERROR if given_up else dg.AssetCheckSeverity.WARN,
            description="; ".join(_line(d, max_attempts) for d in problems) or None,
            metadata={
                "deliveries": len(rows),
                "sent": sum(d.status == "sent" for d in rows),
                "failed": sum(d.status == "failed" for d in rows),
                "unconfirmed": sum(d.status == "unconfirmed" for d in rows),
                "problems": dg.MetadataValue.md(_table(problems, max_attempts)),
            },
        )

    return [reports, deliveries_ok]


def undelivered(result: dg.ExecuteInProcessResult) -> list[str]:
    """What a run's deliveries left undone, one line per workspace ("deliveries of shop-a: 1 failed"), for
    `abos run`: a failure with attempts left does not fail the run, but the command must not say all is well."""
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key != DELIVERIES:
            continue
        counts = {status: materialization.metadata[status].value for status in ("failed", "unconfirmed")
                  if status in materialization.metadata and materialization.metadata[status].value}
        if counts:
            lines.append(f"deliveries of {materialization.partition}: "
                         + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return lines


def _line(delivery: Delivery, max_attempts: int) -> str:
    """"report → channel recipient: status (attempt k of N): reason"."""
    where = f"{delivery.report_id} → {delivery.channel} {delivery.recipient}"
    if delivery.status == "sent":
        return f"{where}: sent via {delivery.via} ({delivery.external_id})"
    state = delivery.status
    if delivery.status == "failed":
        state = "failed, no attempts left" if delivery.attempts >= max_attempts else "failed, retried next run"
    return f"{where}: {state} (attempt {delivery.attempts} of {max_attempts}): {delivery.last_error}"


def _table(deliveries: list[Delivery], max_attempts: int) -> str:
    if not deliveries:
        return "none"
    rows = ["| report | channel | recipient | status | attempts | via | detail |", "|---|---|---|---|---:|---|---|"]
    for d in deliveries:
        detail = d.external_id if d.status == "sent" else d.last_error
        rows.append(f"| {d.report_id} | {d.channel} | {d.recipient} | {d.status} | {d.attempts}/{max_attempts} "
                    f"| {d.via} | {str(detail).replace('|', '/')} |")
    return "\n".join(rows)
