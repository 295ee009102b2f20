"""Orchestration, evaluated by Dagster itself (schedule ticks, automation conditions), never by the clock."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml
from dagster._utils.schedules import cron_string_iterator  # what the scheduler daemon iterates

from pipelines.insights.assets import REPORTS, insights_assets
from pipelines.insights.reports import Week
from pipelines.deliver.definitions import weekly_report_job, weekly_report_schedules
from pipelines.reliability import API_RETRY_POLICY
from pipelines.settings import load_settings
from pipelines.workspaces import load_workspaces

UTC = timezone.utc


@pytest.fixture(scope="module")
def instance():
    """One test instance for the module: resolving Definitions binds to the current instance."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="module")
def defs(tmp_path_factory, instance) -> dg.Definitions:
    """The real Definitions, over the demo workspaces.yaml."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("abos")
        patch.setenv("ABOS_HOME", str(home))
        patch.delenv("ABOS_WAREHOUSE_URL", raising=False)
        patch.delenv("ABOS_WORKSPACES", raising=False)
        import pipelines.definitions

        return importlib.reload(pipelines.definitions).defs


@pytest.fixture(scope="module")
def far_workspaces(tmp_path_factory):
    """Workspaces where Monday 08:00 local is not Monday in UTC, or not on the hour."""
    path = tmp_path_factory.mktemp("ws") / "workspaces.yaml"
    stripe = {"stripe": {"base_url": "http://127.0.0.1:9", "api_key_env": "UNUSED_KEY"}}
    path.write_text(yaml.safe_dump({"workspaces": [
        {"id": "kiwi-saas", "name": "Kiwi", "vertical": "saas", "timezone": "Pacific/Auckland", "currency": "NZD",
         "connectors": stripe},
        {"id": "chai-saas", "name": "Chai", "vertical": "saas", "timezone": "Asia/Kolkata", "currency": "INR",
         "connectors": stripe},
    ]}))
    return load_workspaces(path)


def _schedules_by_workspace(defs: dg.Definitions, workspaces) -> dict[str, dg.ScheduleDefinition]:
    schedules = {s.name: s for s in defs.get_repository_def().schedule_defs}
    return {w.id: schedules[f"weekly_report_{w.id.replace('-', '_')}"] for w in workspaces}


def _check_weekly_ticks(defs, instance, schedule: dg.ScheduleDefinition, workspace, start: datetime) -> None:
    """Ticks are Mondays 08:00 local; evaluating one asks for this workspace's report of the week just ended."""
    tz = ZoneInfo(workspace.timezone)
    ticks = cron_string_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone)
    for tick in [next(ticks) for _ in range(6)]:
        local = tick.astimezone(tz)
        assert (local.isoweekday(), local.hour, local.minute) == (1, 8, 0), (workspace.id, tick)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                            repository_def=defs.get_repository_def())
        result = schedule.evaluate_tick(context)
        [request] = result.run_requests
        # The report covers the Monday-to-Sunday week that ended at local midnight before the tick.
        week = Week.containing(local.date() - timedelta(days=7))
        assert request.partition_key == workspace.id
        assert request.run_config["ops"][REPORTS.to_python_identifier()]["config"]["week"] == week.label
        assert request.run_key == f"{workspace.id}:{week.label}"


def test_weekly_report_ticks_monday_8_in_each_demo_workspace_timezone(defs, instance):
    workspaces = load_workspaces()
    schedules = _schedules_by_workspace(defs, workspaces)
    for workspace in workspaces:
        schedule = schedules[workspace.id]
        assert schedule.execution_timezone == workspace.timezone
        # Across the 2026 spring-forward of the US (March 8): New York moves from 13:00 to 12:00 UTC.
        _check_weekly_ticks(defs, instance, schedule, workspace, datetime(2026, 2, 20, tzinfo=UTC))
    ticks = cron_string_iterator(datetime(2026, 3, 1, tzinfo=UTC).timestamp(), "0 8 * * 1", "America/New_York")
    assert [next(ticks).astimezone(UTC).hour for _ in range(2)] == [13, 12]


def test_weekly_report_ticks_where_monday_local_is_sunday_in_utc(far_workspaces, instance):
    job = weekly_report_job()
    settings = load_settings()
    defs = dg.Definitions(assets=insights_assets(far_workspaces, settings), jobs=[job],
                          schedules=weekly_report_schedules(far_workspaces, job),
                          resources={"warehouse": settings.warehouse})
    schedules = _schedules_by_workspace(defs, far_workspaces)
    for workspace in far_workspaces:
        _check_weekly_ticks(defs, instance, schedules[workspace.id], workspace, datetime(2026, 3, 20, tzinfo=UTC))  # NZ leaves DST on April 5
    auckland = cron_string_iterator(datetime(2026, 3, 20, tzinfo=UTC).timestamp(), "0 8 * * 1", "Pacific/Auckland")
    # Monday 08:00 NZDT (UTC+13) is Sunday 19:00 UTC; after April 5, NZST (UTC+12) makes it 20:00.
    assert [next(auckland).astimezone(UTC).strftime("%a %H:%M") for _ in range(3)] == [
        "Sun 19:00", "Sun 19:00", "Sun 20:00"]


def test_weekly_job_is_the_report_and_its_delivery_of_one_workspace(defs):
    job = defs.resolve_job_def("weekly_report")
    selected = job.asset_layer.selected_asset_keys
    assert REPORTS in selected
    graph = defs.resolve_asset_graph()
    assert all(key == REPORTS or graph.get(key).group_name == "deliver" for key in selected)
    assert job.partitions_def.get_partition_keys() == load_workspaces().ids


def test_definitions_load_with_schedules_sensors_and_freshness_checks(defs):
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {s.name for s in repo.sensor_defs} >= {"refresh", "freshness_checks", "alert_operator_on_failure"}
    assert len(repo.schedule_defs) == len(load_workspaces())
    graph = defs.resolve_asset_graph()
    freshness = {check.asset_key for check in graph.asset_check_keys if check.name == "freshness_check"}
    raw = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name.startswith("ingest_")}
    metrics = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "metrics"}
    assert raw and metrics and freshness == raw | metrics


def test_api_facing_assets_retry_with_exponential_backoff(defs):
    graph = defs.resolve_asset_graph()
    ingest = {graph.get(k).assets_def for k in graph.get_all_asset_keys() if graph.get(k).group_name.startswith("ingest_")}
    assert ingest
    for assets_def in ingest:
        assert assets_def.op.retry_policy == API_RETRY_POLICY
    assert API_RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL and API_RETRY_POLICY.max_retries >= 2


def _materialize_runless(instance: dg.DagsterInstance, graph, keys: set[dg.AssetKey]) -> None:
    """Record that `keys` were materialized (every partition), as finished runs would."""
    for key in keys:
        partitions = graph.get(key).partitions_def
        for partition in partitions.get_partition_keys() if partitions else [None]:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition=partition))


def test_refresh_runs_each_stage_once_per_tick_after_its_parents(defs, instance):
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    raw = {k for k in keys if graph.get(k).group_name.startswith("ingest_")}
    dbt = {k for k in keys if "dbt" in graph.get(k).kinds}
    insights = {k for k in keys if graph.get(k).group_name == "insights"} - {REPORTS}
    start = datetime(2026, 3, 2, 5, 50, tzinfo=UTC)

    def evaluate(minutes: int, cursor):
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor,
                                                   evaluation_time=start + timedelta(minutes=minutes))
        requested = {k for k in keys if result.get_num_requested(k)}
        return result, requested

    result, requested = evaluate(0, None)
    assert requested == set()  # starting the sensor requests nothing before the next tick

    result, requested = evaluate(15, result.cursor)  # 06:05, past the 06:00 tick
    assert raw <= requested
    for key in raw:  # every workspace that uses the connector (the exchange rates: one load for all)
        partitions = graph.get(key).partitions_def
        if partitions is not None:
            assert result.get_requested_partitions(key) == set(partitions.get_partition_keys())
    assert not requested & (insights | {REPORTS})
    # Models over per-workspace raw tables wait for the ingestion. (The exchange rates are one
    # unpartitioned load: Dagster requests the models over them with it, in the same run.)
    waiting = {k for k in dbt if any(graph.get(p).partitions_def for p in graph.get(k).parent_keys & raw)}
    assert waiting and not requested & waiting

    _materialize_runless(instance, graph, requested)
    result, requested = evaluate(30, result.cursor)  # ingestion done: the rest of dbt, in one go
    assert waiting <= requested and requested <= dbt

    _materialize_runless(instance, graph, requested)
    result, requested = evaluate(45, result.cursor)  # metric tables done: every workspace's insights
    assert requested == insights
    for key in insights:
        assert result.get_requested_partitions(key) == set(load_workspaces().ids)

    _materialize_runless(instance, graph, requested)
    result, requested = evaluate(60, result.cursor)
    assert requested == set()  # once per tick

    result, requested = evaluate(6 * 60 + 15, result.cursor)  # 12:05: the next refresh
    assert raw <= requested


def test_abos_run_launches_the_stage_jobs_in_data_flow_order_and_every_asset_once(defs):
    """`abos run` runs named jobs (the Runs page says what ran), never Dagster's ephemeral one."""
    from pipelines.run import stage_runs

    runs = stage_runs(defs)
    jobs = list(dict.fromkeys(job for job, _, _ in runs))
    assert jobs == ["ingest_fx", "ingest_shopify", "ingest_stripe", "transform", "insights", "weekly_report"]
    launched = [key for _, _, keys in runs for key in keys]
    graph = defs.resolve_asset_graph()
    materializable = [k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert sorted(launched) == sorted(materializable)  # each asset in one run of one job
    for job, _, keys in runs:  # each run's assets belong to the job it launches
        assert set(keys) <= set(defs.resolve_job_def(job).asset_layer.executable_asset_keys)


def test_schedules_and_sensors_launch_named_jobs(defs):
    repo = defs.get_repository_def()
    assert {s.job_name for s in repo.schedule_defs} == {"weekly_report"}
    assert repo.get_sensor_def("retry_failed_deliveries").job_name == "weekly_report"
    assert repo.get_sensor_def("compliance_webhooks").job_name == "privacy_requests"


def test_dbt_models_are_grouped_by_the_folder_they_live_in(defs):
    """Read from each model's file path, not the translator's fqn: int_* models are `intermediate`."""
    import json
    from pathlib import Path

    from pipelines.transform import DBT_PROJECT_DIR

    manifest = json.loads((Path(DBT_PROJECT_DIR) / "target" / "manifest.json").read_text())
    graph = defs.resolve_asset_graph()
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert models
    for node in models:
        folder = Path(node["original_file_path"]).parts[1]  # models/<folder>/...
        assert graph.get(dg.AssetKey(node["name"])).group_name == folder, node["original_file_path"]
    intermediate = [n["name"] for n in models if n["name"].startswith("int_")]
    assert intermediate and {graph.get(dg.AssetKey(name)).group_name for name in intermediate} == {"intermediate"}


def test_every_asset_says_what_it_is_who_owns_it_and_where_it_is_stored(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue  # dbt sources stand for tables other assets write
        assert node.description and node.description.strip(), key
        assert node.owners, key
        assert "duckdb" in node.kinds or "slack" in node.kinds, (key, node.kinds)
        assert node.kinds & {"dbt", "dlt", "python"}, (key, node.kinds)


def test_no_weekly_report_is_launched_for_a_workspace_whose_last_insights_run_failed(defs, instance, tmp_path,
                                                                                   monkeypatch):
    """One cause, one alert: the failed insights run alerted the operator; the weekly schedule skips
    the workspace, naming that run, instead of launching a report run bound to fail too. Other
    workspaces' ticks still ask for their reports."""
    from pipelines.run import execute_stage_job, stage_runs

    monkeypatch.setenv("ABOS_HOME", str(tmp_path))  # an empty warehouse: the real insights run fails
    failing, healthy = list(load_workspaces(load_settings().workspaces_file))[:2]
    [keys] = [keys for job, _, keys in stage_runs(defs) if job == "insights"]
    result = execute_stage_job(defs, "insights", keys, failing.id, instance, {}, tags={})
    assert not result.success
    schedules = _schedules_by_workspace(defs, [failing, healthy])
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2026, 3, 16, 13, tzinfo=UTC),
                                        repository_def=defs.get_repository_def())
    skipped = schedules[failing.id].evaluate_tick(context)
    assert not skipped.run_requests
    assert f"{failing.id}: its last insights run {result.run_id} failed" in skipped.skip_message
    [request] = schedules[healthy.id].evaluate_tick(context).run_requests
    assert request.partition_key == healthy.id
