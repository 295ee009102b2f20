"""Sandbox accounts: the shop and Stripe-account settings and demo credentials the fake APIs check.

Credentials are derived from the workspace id alone, so `workspaces.yaml` and the README can name
them and they survive a new seed. They are sandbox-only values, never real secrets.
"""

from __future__ import annotations

from typing import Any

SHOPIFY_API_VERSIONS = ("2026-07", "2026-10")  # versions the fake Shopify accepts
SHOPIFY_SCOPES = ("read_orders", "read_all_orders", "read_products", "read_customers")
STRIPE_API_VERSION = "2026-10-28.endive"  # the version the connector pins; see docs/stripe-api.md
STRIPE_PREVIOUS_API_VERSION = "2023-08-16"  # what events created before the account's upgrade are in


def shopify_account(workspace: str, name: str, currency: str, timezone: str, **extra: Any) -> dict[str, Any]:
    return {
        "shop": workspace,
        "name": name,
        "currency": currency,
        "timezone": timezone,
        "access_token": f"shpat_sandbox_{workspace.replace('-', '_')}",
        "client_id": f"sandbox-client-{workspace}",
        "client_secret": f"shpss_sandbox_{workspace.replace('-', '_')}",
        "scopes": list(SHOPIFY_SCOPES),
        # Standard plan figures: a 2000-point bucket restored at 100 points/s.
        "throttle": {"maximum_available": 2000.0, "restore_rate": 100.0},
        **extra,
    }


def stripe_account(
    workspace: str,
    name: str,
    currency: str,
    timezone: str,
    *,
    api_version_upgraded_at: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Stripe account. Events created before `api_version_upgraded_at` keep the older shape."""
    return {
        "account_id": "acct_sandbox" + "".join(c for c in workspace if c.isalnum())[:12],
        "name": name,
        "currency": currency.lower(),
        "timezone": timezone,
        "api_key": f"sk_test_sandbox_{workspace.replace('-', '_')}",
        "api_version": STRIPE_API_VERSION,
        "previous_api_version": STRIPE_PREVIOUS_API_VERSION,
        "api_version_upgraded_at": api_version_upgraded_at,
        **extra,
    }
