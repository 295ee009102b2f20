"""Webhooks as notifications, not truth: the inbox turned into targeted syncs, then the dbt refresh
and the anomaly check of the workspaces they touched, in one run (docs/webhooks.md).

The **`webhook_syncs`** sensor reads `webhooks.inbox` after its cursor (the inbox id) and requests
one `webhook_refresh` run for everything new (none while one is in flight: the next covers what
arrives meanwhile). Its run key comes from the inbox ids, so a tick evaluated twice starts nothing
twice. The run, in one process (Dagster's in-process executor: no process per step, and none per
stage as three runs chained by sensors took), executes as runs of their own, one after the other:

1. per workspace and provider, a run of the workspace's ingest partition (`webhook_sync_<provider>`)
   that re-reads the named objects by id (`SyncTargets`: Shopify orders, customers and products by
   global id, Stripe events and the objects they name). A burst naming more than `MAX_TARGETS`
   objects gets the ordinary sync (changes since the cursor) instead, which reads many objects more
   cheaply;
2. one `webhook_transform` run: the `dbt build` of the models downstream of the connectors those
   syncs loaded (incremental models rebuild the days whose inputs changed);
3. per workspace synced, its anomaly check (`webhook_anomalies`).

The scheduled refresh stays, as the reconciliation that catches what no webhook announced.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from pipelines import inbox
from pipelines.insights.assets import ANOMALIES
from pipelines.reliability import execute_here
from pipelines.settings import Settings
from pipelines.workspaces import Workspaces

STEP_TAG = "abos/webhooks"  # on the webhook runs: refresh (the chain), and its sync, transform and anomalies runs
INBOX_TAG = "abos/inbox"  # a sync run's inbox ids, first-last
WORKSPACES_TAG = "abos/workspaces"  # a transform run's workspaces, comma separated
PARTITION_TAG = "dagster/partition"
REFRESH_JOB = "webhook_refresh"
SYNC_OP = "sync_named_objects"
MAX_TARGETS = 250  # objects one targeted sync reads by id; past that, the ordinary sync is cheaper
READ_LIMIT = 10_000  # inbox rows per tick
LOCK_TIMEOUT_SECONDS = 2.0  # a tick that finds the DuckDB file busy (dbt) skips, and the next one reads
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")  # privacy_jobs' work
SHOPIFY_TYPES = ("orders/", "customers/", "products/")
# A deletion's body is only the object's number: the targeted sync then finds it gone (ingest's `forget`).
DELETE_TOPICS = {"orders/delete": "Order", "products/delete": "Product", "customers/delete": "Customer"}
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]


def named_objects(row: dict[str, Any]) -> list[str]:
    """What one inbox row says changed: a Stripe event id, or a Shopify object's global id (a refund's
    order; a deleted order, product or customer, which the targeted sync then finds gone). Compliance topics and topics
    no connector reads name nothing."""
    if row["provider"] == "stripe":
        return [row["delivery_id"]]
    topic, payload = row["topic"], row["payload"]
    if topic.startswith("refunds/") and payload.get("order_id"):
        return [f"gid://shopify/Order/{payload['order_id']}"]
    if topic in DELETE_TOPICS and str(payload.get("id") or "").isdigit():  # its body is only the id
        return [f"gid://shopify/{DELETE_TOPICS[topic]}/{payload['id']}"]
    gid = payload.get("admin_graphql_api_id")
    if topic.startswith(SHOPIFY_TYPES) and isinstance(gid, str) and gid.startswith("gid://shopify/"):
        return [gid]
    return []


def targeted_syncs(rows: list[dict[str, Any]], connectors: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The syncs inbox `rows` call for: one per workspace and provider that names something, with the
    objects to read by id ([] for a burst: the ordinary sync) and the inbox ids it covers.

    Args:
        rows: inbox rows, oldest first.
        connectors: provider -> the workspaces that use it (rows of others are left alone).
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        provider, workspace_id = row["provider"], row["workspace_id"]
        named = named_objects(row)
        if workspace_id not in connectors.get(provider, ()) or not named:
            continue
        group = groups.setdefault((provider, workspace_id), {"objects": [], "first": row["inbox_id"]})
        group["objects"] += [name for name in named if name not in group["objects"]]
        group["last"] = row["inbox_id"]
    return [{"provider": provider, "workspace": workspace_id,
             "objects": group["objects"] if len(group["objects"]) <= MAX_TARGETS else [],  # [] = the ordinary sync
             "inbox": f"{group['first']}-{group['last']}"}
            for (provider, workspace_id), group in sorted(groups.items())]


def refresh_request(rows: list[dict[str, Any]], connectors: dict[str, set[str]]) -> dg.RunRequest | None:
    """The `webhook_refresh` run for inbox `rows`, keyed by their inbox ids; None when they name nothing."""
    syncs = targeted_syncs(rows, connectors)
    if not syncs:
        return None
    span = f"{rows[0]['inbox_id']}-{rows[-1]['inbox_id']}"
    return dg.RunRequest(job_name=REFRESH_JOB, run_key=f"webhooks:{span}",
                         run_config={"ops": {SYNC_OP: {"config": {"syncs": syncs}}}},
                         tags={STEP_TAG: "refresh", INBOX_TAG: span})


class TargetedSync(dg.Config):
    provider: str
    workspace: str
    objects: list[str]  # global ids or event ids; [] = the ordinary sync (changes since the cursor)
    inbox: str  # the inbox ids it covers, first-last


class RefreshConfig(dg.Config):
    syncs: list[TargetedSync]


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
    """The `webhook_refresh` job, the jobs of the runs it executes, and the `webhook_syncs` sensor."""
    sync_jobs, ops, connectors, models = [], {}, {}, {}
    for provider in ("shopify", "stripe"):
        assets = _ingest_assets(stages, provider)
        if assets is None:
            continue
        name = f"webhook_sync_{provider}"
        models[provider] = dbt_downstream(stages, set(assets.keys))
        sync_jobs.append(dg.define_asset_job(
            name, selection=dg.AssetSelection.assets(*assets.keys).without_checks(),
            executor_def=dg.in_process_executor,
            description=f"Re-read the {provider} objects webhooks named, by id (a step of webhook_refresh)."))
        ops[provider] = (name, assets.node_def.name)
        connectors[provider] = {w.id for w in workspaces.by_connector(provider)}
    dbt_keys = [spec.key for spec in _dbt_specs(stages)]
    transform = dg.define_asset_job(
        "webhook_transform", selection=dg.AssetSelection.assets(*dbt_keys), executor_def=dg.in_process_executor,
        description="The dbt refresh after webhook syncs (a step of webhook_refresh).")
    anomalies = dg.define_asset_job(
        "webhook_anomalies", selection=dg.AssetSelection.assets(ANOMALIES).without_checks(),
        executor_def=dg.in_process_executor,
        description="The anomaly check of a workspace webhooks changed (a step of webhook_refresh).")

    def execute(context: dg.OpExecutionContext, job_name: str, **run: Any) -> dg.JobExecutionResult:
        """A run of `job_name` in this process, shown in the UI as a run of this code location."""
        origin = context.dagster_run.remote_job_origin
        result = execute_here(context.repository_def.get_job(job_name), context.instance,
                              repository=origin.repository_origin if origin else None, **run)
        (context.log.info if result.success else context.log.error)(
            f"{job_name} {run.get('partition_key') or ''} {'succeeded' if result.success else 'FAILED'}: "
            f"run {result.run_id}")
        return result

    @dg.op(name=SYNC_OP, out=dg.Out(list))
    def sync_named_objects(context: dg.OpExecutionContext, config: RefreshConfig) -> list:
        """Each workspace's targeted sync, as a run of its own; the syncs that succeeded.

        A failed run alerts the operator itself (`alert_operator_on_failure`); its objects are read
        by the next scheduled sync, and the others' refresh goes on."""
        synced = []
        for sync in config.syncs:
            job, op = ops[sync.provider]
            result = execute(context, job, partition_key=sync.workspace,
                             run_config={"ops": {op: {"config": {"objects": sync.objects}}}},
                             tags={STEP_TAG: "sync", INBOX_TAG: sync.inbox})
            if result.success:
                synced.append({"provider": sync.provider, "workspace": sync.workspace})
        return synced

    @dg.op(name="transform_and_check")
    def transform_and_check(context: dg.OpExecutionContext, synced: list) -> None:
        """The dbt refresh of the models downstream of the synced connectors, then each synced
        workspace's anomaly check, each a run of its own."""
        if not synced:
            return
        touched = sorted({sync["workspace"] for sync in synced})
        # Only the models downstream of the connectors synced (a shop's webhooks rebuild no SaaS
        # model); their incremental daily tables then rebuild only the days that changed...
        selected = sorted({key for sync in synced for key in models[sync["provider"]]},
                          key=lambda key: key.to_user_string())
        # ...once every other model has been built (a first refresh before any build builds them all).
        others = [key for key in dbt_keys if key not in set(selected)]
        built = context.instance.get_latest_materialization_events(others)  # never materialized: absent or None
        if not selected or any(built.get(key) is None for key in others):
            selected = None
        result = execute(context, transform.name, keys=selected,
                         tags={STEP_TAG: "transform", WORKSPACES_TAG: ",".join(touched)})
        if not result.success:
            return  # alerted; the next refresh (webhook or scheduled) builds them
        for workspace_id in touched:
            execute(context, anomalies.name, partition_key=workspace_id, tags={STEP_TAG: "anomalies"})

    @dg.job(name=REFRESH_JOB, executor_def=dg.in_process_executor, tags={STEP_TAG: "refresh"},
            description="From webhooks to checked metrics in one process: targeted syncs, the dbt refresh, "
                        "the anomaly checks (the webhook_syncs sensor).")
    def webhook_refresh():
        transform_and_check(sync_named_objects())

    @dg.sensor(name="webhook_syncs", job=webhook_refresh, minimum_interval_seconds=1,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="A webhook_refresh run for the objects new webhooks name (cursor: the inbox id).")
    def webhook_syncs(context: dg.SensorEvaluationContext):
        # One refresh at a time: two dbt builds would queue on the warehouse (DuckDB) or collide (Postgres).
        if context.instance.get_run_records(dg.RunsFilter(job_name=REFRESH_JOB, statuses=IN_FLIGHT), limit=1):
            return dg.SkipReason("a webhook refresh is in flight; the next one covers what arrives meanwhile")
        after = int(context.cursor or 0)
        try:
            rows = inbox.read_after(settings.warehouse, after, limit=READ_LIMIT, lock_timeout=LOCK_TIMEOUT_SECONDS)
        except TimeoutError:
            return dg.SkipReason("the warehouse is busy; the next tick reads the inbox")
        if not rows:
            return dg.SkipReason("no new webhook in the inbox")
        context.update_cursor(str(rows[-1]["inbox_id"]))
        request = refresh_request([row for row in rows if row["topic"] not in COMPLIANCE_TOPICS], connectors)
        return request or dg.SkipReason(f"{len(rows)} webhooks name nothing to sync")

    return dg.Definitions(jobs=[*sync_jobs, transform, anomalies, webhook_refresh], sensors=[webhook_syncs])
