"""Times as the fake APIs write them: Unix seconds to and from Shopify's and Stripe's ISO-8601 UTC form."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: int) -> str:
    """Unix seconds as Shopify's ISO-8601 UTC form, e.g. 2026-03-02T15:04:05Z."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> int:
    """Shopify's ISO-8601 timestamp to Unix seconds."""
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
