"""Webhooks as notifications, not truth: sensors that turn the inbox into targeted syncs, then the dbt
refresh and the anomaly check of the workspaces they touched (docs/webhooks.md).

1. **`webhook_syncs`** reads `webhooks.inbox` after its cursor (the inbox id) and requests, per
   workspace and provider, a run of that workspace's ingest partition that re-reads the named
   objects by id (`SyncTargets`: Shopify orders, customers and products by global id, Stripe events
   and the objects they name); run keys come from the inbox ids, so a tick evaluated twice starts
   nothing twice. A burst naming more than `MAX_TARGETS` objects gets the ordinary sync (changes
   since the cursor) instead, which reads many objects more cheaply.
2. **`webhook_transform`** requests one dbt refresh once such syncs succeed: the `dbt build` of the
   models downstream of the connectors those syncs loaded (incremental models included), one run
   for every sync that finished since its last request, and none while a previous one is still in
   flight (the next one covers what lands meanwhile).
3. **`webhook_anomalies`** requests the anomaly check of each workspace that dbt run touched.

The scheduled refresh stays, as the reconciliation that catches what no webhook announced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from pipelines import inbox
from pipelines.insights.assets import ANOMALIES
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces

STEP_TAG = "abos/webhooks"  # on every run these sensors request: sync, transform or anomalies
INBOX_TAG = "abos/inbox"  # a sync run's inbox ids, first-last
WORKSPACES_TAG = "abos/workspaces"  # a transform run's workspaces, comma separated
PARTITION_TAG = "dagster/partition"
MAX_TARGETS = 250  # objects one targeted sync reads by id; past that, the ordinary sync is cheaper
READ_LIMIT = 10_000  # inbox rows per tick
LOCK_TIMEOUT_SECONDS = 2.0  # a tick that finds the DuckDB file busy (dbt) skips, and the next one reads
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")  # privacy_jobs' work
SHOPIFY_TYPES = ("orders/", "customers/", "products/")
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


def named_objects(row: dict[str, Any]) -> list[str]:
    """What one inbox row says changed: a Stripe event id, or a Shopify object's global id (a refund's
    order; a deleted order, which the targeted sync then finds gone). Compliance topics and topics
    no connector reads name nothing."""
    if row["provider"] == "stripe":
        return [row["delivery_id"]]
    topic, payload = row["topic"], row["payload"]
    if topic.startswith("refunds/") and payload.get("order_id"):
        return [f"gid://shopify/Order/{payload['order_id']}"]
    if topic == "orders/delete" and str(payload.get("id") or "").isdigit():  # its body is only the id
        return [f"gid://shopify/Order/{payload['id']}"]
    gid = payload.get("admin_graphql_api_id")
    if topic.startswith(SHOPIFY_TYPES) and isinstance(gid, str) and gid.startswith("gid://shopify/"):
        return [gid]
    return []


def sync_requests(rows: list[dict[str, Any]], jobs: dict[str, tuple[str, str]],
                  connectors: dict[str, set[str]]) -> list[dg.RunRequest]:
    """The run requests for inbox `rows`: one targeted sync per workspace and provider that names something.

    Args:
        rows: inbox rows, oldest first.
        jobs: provider -> (job name, the ingest op's name for its run config).
        connectors: provider -> the workspaces that use it (rows of others are left alone).
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        provider, workspace_id = row["provider"], row["workspace_id"]
        named = named_objects(row)
        if provider not in jobs or workspace_id not in connectors.get(provider, ()) or not named:
            continue
        group = groups.setdefault((provider, workspace_id), {"objects": [], "first": row["inbox_id"]})
        group["objects"] += [name for name in named if name not in group["objects"]]
        group["last"] = row["inbox_id"]
    requests = []
    for (provider, workspace_id), group in sorted(groups.items()):
        job, op = jobs[provider]
        objects = group["objects"] if len(group["objects"]) <= MAX_TARGETS else []  # [] = the ordinary sync
        span = f"{group['first']}-{group['last']}"
        requests.append(dg.RunRequest(
            job_name=job, partition_key=workspace_id, run_key=f"webhooks:{provider}:{workspace_id}:{span}",
            run_config={"ops": {op: {"config": {"objects": objects}}}},
            tags={STEP_TAG: "sync", INBOX_TAG: span},
        ))
    return requests


def _ingest_assets(stages: Sequence[dg.Definitions], provider: str) -> dg.AssetsDefinition | None:
    """The ingest multi-asset of `provider` (its raw tables carry the dlt and provider kinds)."""
    for stage in stages:
        for assets in stage.assets or []:
            if isinstance(assets, dg.AssetsDefinition) and any(
                    {"dlt", provider} <= set(spec.kinds) for spec in assets.specs):
                return assets
    return None


def _dbt_specs(stages: Sequence[dg.Definitions]) -> list[dg.AssetSpec]:
    return [spec for stage in stages for assets in stage.assets or []
            if isinstance(assets, dg.AssetsDefinition) for spec in assets.specs if "dbt" in spec.kinds]


def dbt_downstream(stages: Sequence[dg.Definitions], roots: set[dg.AssetKey]) -> list[dg.AssetKey]:
    """The dbt models that read `roots` (a connector's raw tables), directly or through other models:
    what a refresh after that connector's syncs must rebuild. The others' inputs did not change."""
    specs, found = _dbt_specs(stages), set()
    grown = True
    while grown:
        grown = False
        for spec in specs:
            if spec.key not in found and any(dep.asset_key in roots or dep.asset_key in found for dep in spec.deps):
                found.add(spec.key)
                grown = True
    return sorted(found, key=lambda key: key.to_user_string())


def webhook_definitions(stages: Sequence[dg.Definitions], workspaces: Workspaces,
                        settings: Settings) -> dg.Definitions:
    """The jobs the webhook sensors start, and the three sensors."""
    sync_jobs, ops, connectors, models = [], {}, {}, {}
    for provider in ("shopify", "stripe"):
        assets = _ingest_assets(stages, provider)
        if assets is None:
            continue
        name = f"webhook_sync_{provider}"
        models[name] = dbt_downstream(stages, set(assets.keys))
        sync_jobs.append(dg.define_asset_job(
            name, selection=dg.AssetSelection.assets(*assets.keys).without_checks(),
            description=f"Re-read the {provider} objects webhooks named, by id (the webhook_syncs sensor)."))
        ops[provider] = (name, assets.node_def.name)
        connectors[provider] = {w.id for w in workspaces.by_connector(provider)}
    dbt_keys = [spec.key for spec in _dbt_specs(stages)]
    transform = dg.define_asset_job(
        "webhook_transform", selection=dg.AssetSelection.assets(*dbt_keys),
        description="The dbt refresh after webhook syncs (the webhook_transform sensor).")
    anomalies = dg.define_asset_job(
        "webhook_anomalies", selection=dg.AssetSelection.assets(ANOMALIES).without_checks(),
        description="The anomaly check of a workspace webhooks changed (the webhook_anomalies sensor).")

    @dg.sensor(name="webhook_syncs", jobs=sync_jobs, minimum_interval_seconds=5,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Targeted syncs of the objects new webhooks name (cursor: the inbox id).")
    def webhook_syncs(context: dg.SensorEvaluationContext):
        after = int(context.cursor or 0)
        try:
            rows = inbox.read_after(settings.warehouse, after, limit=READ_LIMIT, lock_timeout=LOCK_TIMEOUT_SECONDS)
        except TimeoutError:
            return dg.SkipReason("the warehouse is busy; the next tick reads the inbox")
        if not rows:
            return dg.SkipReason("no new webhook in the inbox")
        context.update_cursor(str(rows[-1]["inbox_id"]))
        requests = sync_requests([row for row in rows if row["topic"] not in COMPLIANCE_TOPICS], ops, connectors)
        return requests or dg.SkipReason(f"{len(rows)} webhooks name nothing to sync")

    @dg.sensor(name="webhook_transform", job=transform, minimum_interval_seconds=5,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="The dbt refresh once webhook syncs succeed (one run for all since the last).")
    def webhook_transform(context: dg.SensorEvaluationContext):
        instance = context.instance
        if instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT, tags={STEP_TAG: "transform"}), limit=1):
            return dg.SkipReason("a webhook dbt refresh is in flight; the next one covers what lands meanwhile")
        since = float(context.cursor or 0)
        done = instance.get_run_records(dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.SUCCESS], tags={STEP_TAG: "sync"},
            updated_after=datetime.fromtimestamp(since, timezone.utc)))
        done = [record for record in done if record.update_timestamp.timestamp() > since]
        if not done:
            return dg.SkipReason("no webhook sync finished since the last refresh")
        newest = max(done, key=lambda record: record.update_timestamp)
        context.update_cursor(str(newest.update_timestamp.timestamp()))
        touched = sorted({record.dagster_run.tags[PARTITION_TAG] for record in done})
        # Only the models downstream of the connectors those syncs loaded (a shop's webhooks rebuild
        # no SaaS model); their incremental daily tables then rebuild only the days that changed.
        selected = sorted({key for record in done for key in models.get(record.dagster_run.job_name, [])},
                          key=lambda key: key.to_user_string())
        # ...once every other model has been built (a first refresh before any build builds them all).
        others = [key for key in dbt_keys if key not in set(selected)]
        built = instance.get_latest_materialization_events(others)  # keys never materialized: absent or None
        if not selected or any(built.get(key) is None for key in others):
            selected = None
        return dg.RunRequest(run_key=f"webhook-transform:{newest.dagster_run.run_id}", asset_selection=selected,
                             tags={STEP_TAG: "transform", WORKSPACES_TAG: ",".join(touched)})

    @dg.run_status_sensor(name="webhook_anomalies", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[transform], request_job=anomalies, minimum_interval_seconds=5,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="The anomaly check of the workspaces a webhook dbt refresh touched.")
    def webhook_anomalies(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        known = set(workspaces.ids)
        return [dg.RunRequest(run_key=f"webhook-anomalies:{run.run_id}:{workspace_id}", partition_key=workspace_id,
                              tags={STEP_TAG: "anomalies"})
                for workspace_id in run.tags.get(WORKSPACES_TAG, "").split(",") if workspace_id in known]

    return dg.Definitions(jobs=[*sync_jobs, transform, anomalies],
                          sensors=[webhook_syncs, webhook_transform, webhook_anomalies])
