"""How the demo tenants of `workspaces.yaml` reach a running sandbox: its connection info as environment variables."""

from __future__ import annotations

from typing import Any


def sandbox_env(info: dict[str, Any]) -> dict[str, str]:
    """Environment variables that point `workspaces.yaml`'s demo tenants at a running sandbox."""
    env = {
        "ABOS_SANDBOX_SHOPIFY_URL": info["shopify"]["base_url"],
        "ABOS_SANDBOX_STRIPE_URL": info["stripe"]["base_url"],
        "ABOS_FX_ECB_URL": info["ecb"]["hist_zip"],
    }
    for workspace, creds in info["shopify"]["workspaces"].items():
        prefix = workspace.upper().replace("-", "_") + "_SHOPIFY_"
        env[prefix + "TOKEN"] = creds["access_token"]
        env[prefix + "CLIENT_ID"] = creds["client_id"]
        env[prefix + "CLIENT_SECRET"] = creds["client_secret"]
    for workspace, creds in info["stripe"]["workspaces"].items():
        env[workspace.upper().replace("-", "_") + "_STRIPE_KEY"] = creds["api_key"]
        if creds.get("webhook_secret"):
            env[workspace.upper().replace("-", "_") + "_STRIPE_WEBHOOK_SECRET"] = creds["webhook_secret"]
    return env
