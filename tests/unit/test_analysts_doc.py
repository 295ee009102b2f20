"""docs/analysts.md: its table reference is the dbt manifest's, so it cannot drift from the models."""

from __future__ import annotations

import json

import yaml

from pipelines.deliver import log
from pipelines.transform import DBT_PROJECT_DIR, ensure_manifest
from pipelines.transform.reference import ANALYSTS_DOC, BEGIN, END, documented_sql, table_reference, with_reference


def manifest() -> dict:
    return json.loads(ensure_manifest().read_text())


def test_the_committed_reference_is_the_manifests():
    committed = ANALYSTS_DOC.read_text()
    assert with_reference(committed, table_reference(manifest())) == committed, \
        "docs/analysts.md's table reference is stale: run `abos docs tables`"


def test_the_reference_lists_every_table_analysts_read_with_its_key():
    reference = table_reference(manifest())
    for table in ["marts.orders", "marts.mrr_movements", "metrics.ecommerce_daily_slices", "metrics.saas_daily_slices",
                  "metrics.saas_daily_metrics", "insights.anomalies", "insights.anomaly_drivers", "insights.reports"]:
        assert f"### `{table}`" in reference
    assert "### `intermediate." not in reference and "### `staging." not in reference  # not the analysts'
    orders = reference.split("### `marts.orders`")[1].split("###")[0]
    assert "Key: `workspace_id`, `order_id`; dbt incremental." in orders  # rebuilt by changed order
    assert "| `customer_type` | `new` for the person's first order" in orders
    drivers = reference.split("### `insights.anomaly_drivers`")[1].split("###")[0]
    assert "Key: `anomaly_id`, `rank`; written by the insights assets (Python)." in drivers


def test_a_changed_model_description_makes_the_committed_doc_stale():
    changed = manifest()
    changed["nodes"]["model.abos.orders"]["description"] = "Something else."
    committed = ANALYSTS_DOC.read_text()
    assert with_reference(committed, table_reference(changed)) != committed
    assert committed.count(BEGIN) == 1 and committed.count(END) == 1


def test_the_delivery_tables_are_documented_as_the_code_creates_them():
    sources = yaml.safe_load((DBT_PROJECT_DIR / "models" / "insights" / "_insights__sources.yml").read_text())
    tables = {table["name"]: [column["name"] for column in table["columns"]] for table in sources["sources"][0]["tables"]}
    assert tables["deliveries"] == list(log.COLUMNS)
    assert tables["delivery_leases"] == list(log.LEASE_COLUMNS)


def test_the_documented_queries_are_found():
    queries = documented_sql(ANALYSTS_DOC.read_text())
    assert len(queries) >= 15
    bridge = next(query for query in queries if "MRR bridge" in query)
    assert "opening_mrr" in bridge and "closing_mrr" in bridge


def test_abos_docs_tables_checks_and_rewrites_a_stale_reference(tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.transform.reference import update_analysts_doc

    assert main(["docs", "tables", "--check"]) == 0
    stale = tmp_path / "analysts.md"
    committed = ANALYSTS_DOC.read_text()
    stale.write_text(committed.replace("### `marts.orders`", "### `marts.orders_old`"))
    assert update_analysts_doc(stale, check=True) is False and "orders_old" in stale.read_text()  # --check writes nothing
    assert update_analysts_doc(stale) is False and stale.read_text() == committed
    assert update_analysts_doc(stale, check=True) is True
