"""Webhook secrets in workspaces.yaml: named by variable, current then previous, never required by `abos run`."""

from __future__ import annotations

import pytest
import yaml

from pipelines.workspaces import WorkspaceError, load_workspaces


def load(tmp_path, stripe: dict, shopify: dict | None = None, **kwargs):
    items = [{"id": "saas", "name": "S", "vertical": "saas", "timezone": "UTC", "currency": "USD",
              "connectors": {"stripe": {"base_url": "https://api.stripe.com", "api_key_env": "KEY", **stripe}}}]
    if shopify is not None:
        items.append({"id": "shop", "name": "T", "vertical": "ecommerce", "timezone": "UTC", "currency": "USD",
                      "connectors": {"shopify": {"base_url": "https://real-shop.myshopify.com", **shopify}}})
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({"workspaces": items}))
    return load_workspaces(tmp_path / "w.yaml", **kwargs)


def test_secrets_current_first_and_unset_previous_skipped(tmp_path):
    workspaces = load(tmp_path, {"webhook_secret_env": "NOW", "webhook_previous_secret_env": "BEFORE"},
                      {"access_token_env": "TOKEN", "webhook_secret_env": "SHOP_NOW"})
    stripe = workspaces.get("saas").connectors["stripe"]
    assert stripe.webhook_secrets({"NOW": "a", "BEFORE": "b"}) == ["a", "b"]
    assert stripe.webhook_secrets({"NOW": "a"}) == ["a"]
    shopify = workspaces.get("shop").connectors["shopify"]
    assert shopify.shop_domain == "real-shop.myshopify.com"
    assert shopify.webhook_secrets({"SHOP_NOW": "c", "TOKEN": "t"}) == ["c"]


def test_a_secret_pasted_as_the_variable_name_is_rejected_without_echoing_it(tmp_path):
    with pytest.raises(WorkspaceError) as caught:
        load(tmp_path, {"webhook_secret_env": "whsec_3f9a8b7c6d5e4f3a2b1c0d9e"})
    assert "looks like a secret" in str(caught.value) and "whsec_3f9a" not in str(caught.value)


def test_unset_webhook_secrets_do_not_stop_the_pipeline(tmp_path):
    workspaces = load(tmp_path, {"webhook_secret_env": "UNSET_WHSEC"}, require_secrets=True, env={"KEY": "k"})
    assert workspaces.ids == ["saas"]
