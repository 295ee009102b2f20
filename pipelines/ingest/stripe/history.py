"""Subscription history: versions of each subscription (and its items) with validity ranges.

Stripe shows only an object's current state, but each event's `data.object` is a full snapshot at
the event's time. So every subscription event becomes a *version* valid from the event's
`created` time until the next version's; a full sync adds a version at the sync's as-of time.

Why not dlt's `scd2` merge strategy: it stamps one boundary timestamp (by default the load time)
on every row of a load, so two changes to one subscription inside one sync cannot both be kept,
and a change is dated when it was loaded rather than when it happened. These versions are dated by
the event, and several can land in one load.

Tables (both merged, so a rerun rewrites the same rows):
- `subscription_history`: one row per `(workspace_id, id, valid_from)`; `valid_to` is the next
  version's `valid_from`, null for the current one. Unix seconds, like every Stripe timestamp.
- `subscription_item_history`: the items of each version, keyed `(workspace_id, subscription,
  valid_from, id)`; join on `(workspace_id, subscription, valid_from)` for their validity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Version:
    """One subscription snapshot: its row, its item rows, and when it took effect."""

    valid_from: int
    row: dict[str, Any]
    items: list[dict[str, Any]]

    @property
    def digest(self) -> str:
        """Identifies the state, so a snapshot equal to its predecessor adds no version."""
        payload = json.dumps([self.row, sorted(self.items, key=lambda i: i["id"])], sort_keys=True, default=str)
        return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def merge_versions(
    stored: list[dict[str, Any]], new: list[Version]
) -> tuple[list[dict[str, Any]], list[Version]]:
    """Place one subscription's new versions among its stored ones and fix every `valid_to`.

    Args:
        stored: the subscription's `subscription_history` rows loaded earlier.
        new: versions seen in this sync, in event order (later wins on the same second).

    Returns:
        Stored rows whose `valid_to` changed (to load again) and the new versions to load,
        each row with `valid_from`, `valid_to` and `version_hash` set.
    """
    by_time: dict[int, tuple[str, Any]] = {int(r["valid_from"]): ("stored", r) for r in stored}
    stored_times = set(by_time)
    for version in new:
        by_time[version.valid_from] = ("new", version)
    timeline = sorted(by_time.items())
    kept: list[tuple[int, str, Any, str]] = []  # (valid_from, origin, payload, digest)
    for valid_from, (origin, payload) in timeline:
        digest = payload["version_hash"] if origin == "stored" else payload.digest
        if origin == "new" and kept and kept[-1][3] == digest and valid_from not in stored_times:
            continue  # nothing changed since the previous version (a stored row must be rewritten)
        kept.append((valid_from, origin, payload, digest))
    changed_stored: list[dict[str, Any]] = []
    new_out: list[Version] = []
    for index, (valid_from, origin, payload, digest) in enumerate(kept):
        valid_to = kept[index + 1][0] if index + 1 < len(kept) else None
        if origin == "stored":
            if payload.get("valid_to") != valid_to:
                changed_stored.append({**payload, "valid_to": valid_to})
        else:
            payload.row.update(valid_from=valid_from, valid_to=valid_to, version_hash=digest)
            for item in payload.items:
                item["valid_from"] = valid_from
            new_out.append(payload)
    return changed_stored, new_out
