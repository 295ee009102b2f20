"""What a simulated business is, apart from how it is simulated: the sizes (simulator.py) and the
generated tenants (tenants.py) both declare businesses with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BusinessSpec:
    """One simulated business: the tenant it belongs to and how big it is."""

    workspace: str
    source: str  # "shopify" or "stripe"
    name: str
    currency: str  # the shop's / account's reporting currency
    timezone: str
    scale: dict[str, Any] = field(default_factory=dict)  # per-vertical size knobs
