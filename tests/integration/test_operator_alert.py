"""The run-failure sensor, evaluated against a real failed run, alerts the operator (here: the outbox)."""

import json

import dagster as dg
import pytest

from pipelines.orchestration import run_failure_alert
from pipelines.settings import load_settings

SHOPS = dg.StaticPartitionsDefinition(["demo-us-store", "demo-br-store"])


@dg.asset(key=["shopify", "orders"], partitions_def=SHOPS)
def orders(context: dg.AssetExecutionContext) -> None:
    raise dg.Failure(description=f"workspace {context.partition_key!r}: connectors.shopify.access_token_env names "
                                 "DEMO_BR_STORE_SHOPIFY_TOKEN, which is not set", allow_retries=False)


@pytest.fixture
def failed_run(abos_home, monkeypatch):
    """A run that really failed, in a temporary persistent instance."""
    monkeypatch.delenv("ABOS_OPERATOR_SLACK_CHANNEL", raising=False)
    with dg.instance_for_test() as instance:
        result = dg.materialize([orders], partition_key="demo-br-store", instance=instance, raise_on_error=False)
        assert not result.success
        yield instance, result


def test_a_failed_run_writes_an_operator_alert_naming_the_workspace_and_the_error(failed_run, abos_home):
    instance, result = failed_run
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_operator_on_failure", dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()

    run_failure_alert(load_settings())(context)

    [alert] = list((abos_home / "outbox" / "_operator").glob("*.json"))
    message = json.loads(alert.read_text())["chat.postMessage"]
    assert message["blocks"][0]["text"]["text"] == f"Run failed: {result.dagster_run.job_name} for demo-br-store"
    text = message["text"]
    assert result.run_id in text
    assert "Step shopify__orders: workspace 'demo-br-store': connectors.shopify.access_token_env" in text
