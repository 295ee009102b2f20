"""The metric registry: every metric, declared once, in the pack of its vertical.

A metric's entry says what it is (name, label, synonyms, unit, direction), how it adds up over days
(sum, last day, or a ratio of two sums), where it is stored (its table; the column is its name) and
the dimensions it splits by (each with the slice table it comes from). Detection, drivers,
reports, the dbt long form `metric_values` (through the generated macro
`dbt_project/macros/metric_registry.sql`, `abos docs tables`) and questions in plain language read
it; nothing else hard-codes a metric. Adding a metric: its entry here, its column in one dbt model
(docs/metrics.md, "Adding a metric"). Adding a vertical: one module here that defines `PACK`,
listed in `PACKS` (docs/packs.md).
"""

from __future__ import annotations

from pipelines.packs import ecommerce, saas
from pipelines.packs.pack import Dimension, Metric, Pack, Pair, signed_sum

__all__ = ["PACKS", "Dimension", "Metric", "Pack", "Pair", "all_metrics", "metric_tables", "pack_for", "signed_sum", "slice_tables"]

PACKS: dict[str, Pack] = {pack.vertical: pack for pack in (ecommerce.PACK, saas.PACK)}


def all_metrics() -> tuple[Metric, ...]:
    """Every metric of every pack: the whole registry."""
    return tuple(metric for pack in PACKS.values() for metric in pack.metrics)


def metric_tables() -> tuple[str, ...]:
    """Every table a registry metric is stored in."""
    return tuple(dict.fromkeys(metric.table for metric in all_metrics()))


def slice_tables() -> tuple[str, ...]:
    """Every table a registry dimension comes from."""
    return tuple(dict.fromkeys(table for pack in PACKS.values() for table in pack.slice_tables))


def pack_for(vertical: str) -> Pack:
    """The pack of a vertical.

    Raises:
        LookupError: no pack for that vertical; the message names it and the verticals that exist.
    """
    if vertical not in PACKS:
        raise LookupError(f"no pack for vertical {vertical!r}; known verticals: {', '.join(sorted(PACKS))}")
    return PACKS[vertical]
