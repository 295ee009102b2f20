"""Many tenants: N generated tiny shops and SaaS accounts besides a size's demo businesses (`--tenants N`).

The product's real scale is many small businesses at once, not one big one. `abos sandbox serve
--tenants 200` adds 200 workspaces, `t0000` to `t0199`, alternately a Shopify shop (a few orders a
day) and a Stripe SaaS account (a few dozen customers), over the same history as the size's demo
businesses; `workspaces_file` writes the tenants file that points at them. The benchmark's tenants
phase (pipelines/bench/tenants.py) refreshes them through the Dagster definitions.

The size string carries the count (`tiny+200`), so a store generated with tenants is advanced, and
its truth computed, with the same businesses.

`Tenant` is what any generated tenant is: these, whose stores the simulators fill, and the tenant
matrix's (matrix.py), which extends it with the orders and subscriptions it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipelines.sandbox.simulation.business import BusinessSpec

# Home currency and timezone, taken in turn; every currency has ECB rates in the sandbox.
PLACES = (("USD", "America/New_York", ["US", "CA"]), ("EUR", "Europe/Berlin", ["DE", "FR"]),
          ("BRL", "America/Sao_Paulo", ["BR"]), ("GBP", "Europe/London", ["GB"]))
SHOP_SCALE = {"orders_per_day": 3, "products": 6}
SAAS_SCALE = {"customers": 30}


@dataclass(frozen=True)
class Tenant:
    """A generated workspace: who it is, what it sells, its money and its clock."""

    workspace: str
    shape: str  # SIMULATED here; the tenant matrix's: plain, empty, huge_order, many_currencies
    vertical: str  # "ecommerce" (a Shopify shop) or "saas" (a Stripe account)
    currency: str  # the shop's / the Stripe account's currency
    reporting_currency: str
    timezone: str

    @property
    def source(self) -> str:
        return "shopify" if self.vertical == "ecommerce" else "stripe"


SIMULATED = "simulated"  # the shape of a tenant whose store the simulators fill


def tenant_id(index: int) -> str:
    return f"t{index:04d}"


def generated_tenant(index: int) -> Tenant:
    """Tenant `index` of `--tenants N`: alternately a shop and a SaaS account, in the places in turn."""
    currency, timezone, _ = _place(index)
    vertical = "ecommerce" if index % 2 == 0 else "saas"
    return Tenant(tenant_id(index), SIMULATED, vertical, currency, currency, timezone)


def _place(index: int) -> tuple[str, str, list[str]]:
    return PLACES[(index // 2) % len(PLACES)]


def split_size(size: str) -> tuple[str, int]:
    """`tiny+200` -> ("tiny", 200); a size without `+` has no generated tenants."""
    base, plus, count = size.partition("+")
    if not plus:
        return size, 0
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"sandbox size {size!r}: the tenant count after + must be a positive whole number")
    return base, int(count)


def with_tenants(size: str, tenants: int | None) -> str:
    """The size string for `size` plus `tenants` generated tenants."""
    return f"{size}+{tenants}" if tenants else size


def tenant_specs(count: int, history_days: int) -> list[BusinessSpec]:
    """`count` tiny businesses, alternately a shop and a SaaS account, with `history_days` of history."""
    found = []
    for index in range(count):
        tenant = generated_tenant(index)
        countries = _place(index)[2]
        if tenant.vertical == "ecommerce":
            name, scale = f"Tenant shop {index}", {**SHOP_SCALE, "countries": countries}
        else:
            weights = [10, 90] if tenant.currency == "EUR" else [90, 10]  # customers mostly billed at home
            name, scale = f"Tenant SaaS {index}", {**SAAS_SCALE, "currencies": ["usd", "eur"], "currency_weights": weights}
        found.append(BusinessSpec(tenant.workspace, tenant.source, name, tenant.currency, tenant.timezone,
                                  {**scale, "history_days": history_days}))
    return found


def workspaces_file(specs: list[BusinessSpec], path: Path) -> Path:
    """A tenants file (workspaces.yaml's schema) for the generated tenants among `specs`.

    Base URLs and secrets are read from the variables `abos sandbox env` sets for a running sandbox
    (ABOS_SANDBOX_SHOPIFY_URL, <WORKSPACE>_SHOPIFY_TOKEN, <WORKSPACE>_STRIPE_KEY...).
    """
    entries: list[dict[str, Any]] = []
    for spec in specs:
        if not spec.workspace.startswith("t") or not spec.workspace[1:].isdigit():
            continue
        prefix = spec.workspace.upper().replace("-", "_")
        if spec.source == "shopify":
            connector = {"shopify": {
                "base_url": "${ABOS_SANDBOX_SHOPIFY_URL}/shops/" + spec.workspace,
                "access_token_env": f"{prefix}_SHOPIFY_TOKEN",
            }}
        else:
            connector = {"stripe": {"base_url": "${ABOS_SANDBOX_STRIPE_URL}", "api_key_env": f"{prefix}_STRIPE_KEY"}}
        entries.append({
            "id": spec.workspace, "name": spec.name, "vertical": "ecommerce" if spec.source == "shopify" else "saas",
            "timezone": spec.timezone, "currency": spec.currency, "connectors": connector,
            "notifications": {"email": {"to": [f"owner@{spec.workspace}.example"]}},
        })
    path.write_text("# Generated by pipelines/sandbox/simulation/tenants.py: the sandbox's generated tenants.\n"
                    + yaml.safe_dump({"workspaces": entries}, sort_keys=False))
    return path
