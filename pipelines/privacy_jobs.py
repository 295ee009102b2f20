"""Privacy requests in Dagster: a sensor starts the `privacy_requests` job when a Shopify compliance
webhook lands in the inbox (docs/privacy.md), so it is carried out within minutes, not by hand."""

from __future__ import annotations

import dagster as dg

from pipelines import privacy
from pipelines.settings import Settings


def privacy_definitions(settings: Settings) -> dg.Definitions:
    """The `privacy_requests` job and the `compliance_webhooks` sensor that starts it."""

    @dg.op(description="Carry out the compliance webhooks in the inbox not yet in privacy.audit_log.")
    def carry_out_compliance_requests(context) -> None:
        for result in privacy.handle_compliance(settings):
            context.log.info(f"{result.get('request', 'customers/data_request')}: {result}")

    @dg.job(name="privacy_requests", description="Shopify's customers/redact, customers/data_request, shop/redact.")
    def privacy_requests() -> None:
        carry_out_compliance_requests()

    @dg.sensor(job=privacy_requests, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Start privacy_requests when a compliance webhook arrives (cursor: the inbox id).")
    def compliance_webhooks(context: dg.SensorEvaluationContext):
        after = int(context.cursor or 0)
        newest = privacy.pending_compliance(settings, after)
        if newest == after:
            return dg.SkipReason("no new compliance webhook in the inbox")
        context.update_cursor(str(newest))
        return dg.RunRequest(run_key=f"compliance:{newest}")

    return dg.Definitions(jobs=[privacy_requests], sensors=[compliance_webhooks])
