"""The workspace partitions every stage shares: one partition per tenant of `workspaces.yaml`.

Ingestion is partitioned by the workspaces that use a connector, insights and delivery by every
workspace; the dbt models are unpartitioned (one build covers every workspace).
"""

from __future__ import annotations

import dagster as dg

from pipelines.workspaces import Workspaces


def workspace_partitions(workspaces: Workspaces) -> dg.StaticPartitionsDefinition:
    """One partition per workspace."""
    return dg.StaticPartitionsDefinition(workspaces.ids)


def connector_partitions(workspaces: Workspaces, source: str) -> dg.StaticPartitionsDefinition:
    """One partition per workspace that uses connector `source` (shopify, stripe)."""
    return dg.StaticPartitionsDefinition([w.id for w in workspaces.by_connector(source)])
