"""The seeded business simulator's shared parts: sizes, demo businesses, seeded draws and times.

Each business is simulated by a vertical package (`shop/` for Shopify stores, `saas/` for the
Stripe SaaS) that implements `BusinessSimulator`; `runner.py` runs them (generate / advance /
truth). The same seed, size and as-of date give byte-identical stores; the clock can then be advanced, which applies every change that falls due
(refunds, edits, renewals, churn...) and creates the new days' objects.

Randomness never comes from Python's `hash()` (salted per process) or global state: every draw
comes from `rng(seed, ...)`, keyed by what is being drawn.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any, Callable, Protocol
from zoneinfo import ZoneInfo

from pipelines.sandbox.core.times import iso, parse_iso  # noqa: F401 (the simulators' times, with the ones below)
from pipelines.sandbox.simulation.business import BusinessSpec
from pipelines.sandbox.core.store import SandboxStore
from pipelines.sandbox.simulation.tenants import split_size, tenant_specs

HISTORY_DAYS = 760  # a little over two years, so year-over-year comparisons have a full year
EVENT_RETENTION_DAYS = 30  # Stripe keeps events for 30 days
STORE_FORMAT = 1  # bump when the stored layout changes, so cached stores are rebuilt


SIZES: dict[str, list[BusinessSpec]] = {
    # For tests and quick looks: the same three businesses over four months, at a fraction of the volume.
    "tiny": [
        BusinessSpec(
            "demo-us-store", "shopify", "Summit Outdoor Supply", "USD", "America/New_York",
            {"orders_per_day": 20, "products": 12, "countries": ["US", "CA", "GB"], "history_days": 120},
        ),
        BusinessSpec(
            "demo-br-store", "shopify", "Loja Verde Brasil", "BRL", "America/Sao_Paulo",
            {"orders_per_day": 8, "products": 8, "countries": ["BR", "PT"], "history_days": 120},
        ),
        BusinessSpec(
            "demo-saas", "stripe", "Metricly Analytics", "USD", "America/Los_Angeles",
            {"customers": 250, "currencies": ["usd", "eur", "jpy"], "history_days": 120},
        ),
    ],
    "small": [
        BusinessSpec(
            "demo-us-store", "shopify", "Summit Outdoor Supply", "USD", "America/New_York",
            {"orders_per_day": 90, "products": 40, "countries": ["US", "CA", "GB", "AU", "DE"]},
        ),
        BusinessSpec(
            "demo-br-store", "shopify", "Loja Verde Brasil", "BRL", "America/Sao_Paulo",
            {"orders_per_day": 30, "products": 25, "countries": ["BR", "PT", "AR"]},
        ),
        BusinessSpec(
            "demo-saas", "stripe", "Metricly Analytics", "USD", "America/Los_Angeles",
            {"customers": 3000, "currencies": ["usd", "eur", "jpy"]},
        ),
    ],
    "large": [
        BusinessSpec(
            "demo-us-store", "shopify", "Summit Outdoor Supply", "USD", "America/New_York",
            {"orders_per_day": 1900, "products": 400, "countries": ["US", "CA", "GB", "AU", "DE"]},
        ),
        BusinessSpec(
            "demo-br-store", "shopify", "Loja Verde Brasil", "BRL", "America/Sao_Paulo",
            {"orders_per_day": 40, "products": 60, "countries": ["BR", "PT", "AR"]},
        ),
        BusinessSpec(
            "demo-saas", "stripe", "Metricly Analytics", "USD", "America/Los_Angeles",
            {"customers": 160_000, "currencies": ["usd", "eur", "jpy"]},  # ~175k subscriptions, ~1.04M invoices
        ),
    ],
}


# Volume knobs that `<size>@<fraction>` scales; catalogs, countries and history stay as they are.
VOLUME_KNOBS = ("orders_per_day", "customers")


def specs(size: str) -> list[BusinessSpec]:
    """The businesses of `size`: a name of SIZES, or `<name>@<fraction>` for that size at a fraction
    of its volume (the benchmark's `--scale`, e.g. `large@0.05`), then `+<N>` for N generated tiny
    tenants (`--tenants`, sandbox/simulation/tenants.py). Named sizes are never altered."""
    size, tenants = split_size(size)
    found = _sized(size)
    if not tenants:
        return found
    history = max(int(spec.scale.get("history_days", HISTORY_DAYS)) for spec in found)
    return found + tenant_specs(tenants, history)


def _sized(size: str) -> list[BusinessSpec]:
    name, _, fraction = size.partition("@")
    if name not in SIZES:
        raise ValueError(f"unknown sandbox size {size!r}; choose one of {', '.join(SIZES)}")
    if not fraction:
        return SIZES[name]
    try:
        share = float(fraction)
    except ValueError:
        share = 0.0
    if not 0 < share <= 1:
        raise ValueError(f"sandbox size {size!r}: the scale after @ must be a fraction in (0, 1]")
    return [
        replace(spec, scale={**spec.scale, **{k: spec.scale[k] * share for k in VOLUME_KNOBS if k in spec.scale}})
        for spec in SIZES[name]
    ]


def history_days(size: str) -> int:
    """Days of simulated history before the as-of day for `size`."""
    return max(int(spec.scale.get("history_days", HISTORY_DAYS)) for spec in specs(size))


def rng(seed: int, *parts: object) -> random.Random:
    """A random generator determined by the seed and a key, identical across processes."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def stable_id(seed: int, *parts: object, length: int = 14) -> str:
    """A deterministic alphanumeric id suffix (for Stripe-style ids such as `cus_...`)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=16).digest(), "big")
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(alphabet))
        chars.append(alphabet[digit])
    return "".join(chars)


def local_midnight(day: date, tz: str) -> int:
    """Unix seconds of 00:00 on `day` in timezone `tz`."""
    return int(datetime.combine(day, time(0), ZoneInfo(tz)).timestamp())


def local_date(ts: int, tz: str) -> date:
    """The calendar day, in timezone `tz`, of Unix time `ts`."""
    return datetime.fromtimestamp(ts, ZoneInfo(tz)).date()


Progress = Callable[[str], None]


class BusinessSimulator(Protocol):
    """What a vertical simulator provides. See shop/simulator.py and saas/simulator.py."""

    spec: BusinessSpec

    def account(self) -> dict[str, Any]:
        """Account settings and demo credentials the fake API checks (stored in `accounts`)."""

    def generate(self, store: SandboxStore, until: int, progress: Progress) -> None:
        """Write every object created before `until`, in its state at `until`, plus plans for
        changes still to come. Streams: memory must not grow with history."""

    def advance(self, store: SandboxStore, since: int, until: int) -> dict[str, int]:
        """Apply every change in `(since, until]`: due plans, then the new days' objects.
        Changed objects get a new updated time; Stripe changes also write events. Returns
        counts of what changed, by kind."""

    def truth(self, store: SandboxStore) -> dict[str, Any]:
        """Ground truth at the store's clock: counts, money sums and reference metric totals."""

    def anomalies(self) -> list[dict[str, Any]]:
        """The anomalies injected into this business, with their dates, metric and driver."""
