"""What the webhook_syncs sensor makes of inbox rows: the objects each names, one webhook_refresh run
with one targeted sync per workspace and provider, and the ordinary sync for a burst too large to
read by id."""

from __future__ import annotations

import dagster as dg

from pipelines.ingest.shopify import targets_by_type
from pipelines.webhook_jobs import (
    MAX_TARGETS,
    SYNC_OP,
    dbt_downstream,
    named_objects,
    refresh_request,
    targeted_syncs,
)

USERS = {"shopify": {"shop-a", "shop-b"}, "stripe": {"saas"}}


def row(inbox_id: int, provider: str, workspace: str, topic: str, payload: dict, delivery: str | None = None) -> dict:
    return {"inbox_id": inbox_id, "provider": provider, "workspace_id": workspace, "topic": topic,
            "delivery_id": delivery or f"d{inbox_id}", "payload": payload}


def order(number: int) -> dict:
    return {"id": number, "admin_graphql_api_id": f"gid://shopify/Order/{number}"}


def test_what_each_topic_names():
    assert named_objects(row(1, "shopify", "shop-a", "orders/updated", order(7))) == ["gid://shopify/Order/7"]
    assert named_objects(row(2, "shopify", "shop-a", "refunds/create", {"id": 9, "order_id": 7})) \
        == ["gid://shopify/Order/7"]
    assert named_objects(row(3, "shopify", "shop-a", "customers/update",
                             {"admin_graphql_api_id": "gid://shopify/Customer/3"})) == ["gid://shopify/Customer/3"]
    assert named_objects(row(4, "stripe", "saas", "customer.subscription.updated", {}, "evt_1")) == ["evt_1"]
    assert named_objects(row(5, "shopify", "shop-a", "app/uninstalled", {"id": 1})) == []
    assert named_objects(row(6, "shopify", "shop-a", "orders/updated", {"admin_graphql_api_id": "not-a-gid"})) == []
    assert named_objects(row(7, "shopify", "shop-a", "orders/delete", {"id": 450789469})) \
        == ["gid://shopify/Order/450789469"]  # a deletion's body is only the order's number
    assert named_objects(row(8, "shopify", "shop-a", "orders/delete", {"id": "x"})) == []
    assert named_objects(row(9, "shopify", "shop-a", "products/delete", {"id": 788032119674292922})) \
        == ["gid://shopify/Product/788032119674292922"]
    assert named_objects(row(10, "shopify", "shop-a", "customers/delete", {"id": 706405506930370084})) \
        == ["gid://shopify/Customer/706405506930370084"]


def test_one_refresh_with_a_targeted_sync_per_workspace_and_provider_with_each_object_once():
    rows = [row(3, "shopify", "shop-a", "orders/create", order(1)),
            row(4, "stripe", "saas", "invoice.paid", {}, "evt_9"),
            row(5, "shopify", "shop-b", "orders/create", order(2)),
            row(8, "shopify", "shop-a", "orders/updated", order(1)),  # the same order again
            row(9, "shopify", "shop-a", "refunds/create", {"id": 4, "order_id": 3}),
            row(10, "shopify", "gone", "orders/create", order(5)),  # a workspace no longer configured
            row(11, "stripe", "shop-a", "invoice.paid", {}, "evt_x")]  # a workspace without Stripe
    request = refresh_request(rows, USERS)
    assert (request.job_name, request.run_key) == ("webhook_refresh", "webhooks:3-11")
    assert request.run_config["ops"][SYNC_OP]["config"]["syncs"] == [
        {"provider": "shopify", "workspace": "shop-a", "inbox": "3-9",
         "objects": ["gid://shopify/Order/1", "gid://shopify/Order/3"]},
        {"provider": "shopify", "workspace": "shop-b", "inbox": "5-5", "objects": ["gid://shopify/Order/2"]},
        {"provider": "stripe", "workspace": "saas", "inbox": "4-4", "objects": ["evt_9"]},
    ]
    assert refresh_request(rows[5:], USERS) is None  # nothing any workspace syncs


def test_a_burst_too_large_to_read_by_id_gets_the_ordinary_sync():
    rows = [row(n, "shopify", "shop-a", "orders/create", order(n)) for n in range(1, MAX_TARGETS + 2)]
    (sync,) = targeted_syncs(rows, USERS)
    assert sync["objects"] == []  # changes since the cursor
    (sync,) = targeted_syncs(rows[:MAX_TARGETS], USERS)
    assert len(sync["objects"]) == MAX_TARGETS


def test_shopify_targets_go_to_the_object_type_that_reads_them():
    assert targets_by_type(["gid://shopify/Order/1", "gid://shopify/Customer/2", "gid://shopify/Product/3",
                            "gid://shopify/Order/4", "gid://shopify/Fulfillment/5", "evt_1"]) == {
        "orders": ["gid://shopify/Order/1", "gid://shopify/Order/4"], "customers": ["gid://shopify/Customer/2"],
        "products": ["gid://shopify/Product/3"]}


def test_a_refresh_rebuilds_the_models_downstream_of_the_synced_connector_only():
    """raw_a -> stg_a -> mart (also reads stg_b) -> metric; raw_b -> stg_b; raw_c -> stg_c."""
    def model(name: str, *deps: str) -> dg.AssetSpec:
        return dg.AssetSpec(name, deps=list(deps), kinds={"dbt"})

    specs = [model("stg_a", "raw_a"), model("stg_b", "raw_b"), model("mart", "stg_a", "stg_b"),
             model("metric", "mart"), model("stg_c", "raw_c")]
    stages = [dg.Definitions(assets=[dg.multi_asset(specs=specs, name="dbt_models")(lambda: None)])]
    names = lambda keys: [key.to_user_string() for key in keys]
    assert names(dbt_downstream(stages, {dg.AssetKey("raw_a")})) == ["mart", "metric", "stg_a"]
    assert names(dbt_downstream(stages, {dg.AssetKey("raw_b")})) == ["mart", "metric", "stg_b"]
    assert names(dbt_downstream(stages, {dg.AssetKey("raw_c")})) == ["stg_c"]
