"""THE Dagster Definitions: assembles every pipeline stage (ingest, transform, insights, deliver).

Stages register here as they are built; `dagster definitions validate` must pass at every step.
"""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions(assets=[])
