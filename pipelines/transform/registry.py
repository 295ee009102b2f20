"""The metric registry as dbt sees it: `dbt_project/macros/metric_registry.sql`, generated from
`pipelines/packs` so the dbt models never keep a list of metrics of their own.

`metric_values` unions every registry metric but the forecasts from its table, `forecast_metrics`
reads the forecasts of the metrics the registry names, and the models that compute a ratio
take its numerator and denominator from the macro. `abos docs tables` rewrites the file; a unit
test (and `abos docs tables --check`) fails when it differs from the registry.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.packs import all_metrics
from pipelines.transform import DBT_PROJECT_DIR

REGISTRY_MACRO = DBT_PROJECT_DIR / "macros" / "metric_registry.sql"
HEADER = """{#- Generated from the metric registry (pipelines/packs) by `abos docs tables`: do not edit.
    metric_registry() gives every registry metric by name: its table in the metrics schema, its
    unit ("currency", "count" or "ratio") and, for a ratio, its numerator and denominator (signed
    sums of the table's metric columns, e.g. "gross_sales - discounts"); for a forecast, the metric
    it forecasts (`forecast_of`). docs/metrics.md, "Adding a metric". -#}
"""


def registry_macro() -> str:
    """The text of `metric_registry.sql` for the current registry."""
    lines = []
    for metric in all_metrics():
        fields = {"table": metric.table, "unit": metric.unit}
        if metric.ratio is not None:
            fields |= {"numerator": metric.ratio[0], "denominator": metric.ratio[1]}
        if metric.forecast_of:
            fields["forecast_of"] = metric.forecast_of
        body = ", ".join(f"'{key}': '{value}'" for key, value in fields.items())
        lines.append(f"    '{metric.name}': {{{body}}},")
    return HEADER + "{% macro metric_registry() -%}\n{{ return({\n" + "\n".join(lines) + "\n}) }}\n{%- endmacro %}\n"


def update_registry_macro(path: Path = REGISTRY_MACRO, *, check: bool = False) -> bool:
    """Rewrite the macro from the registry (unless `check`); whether it was already current."""
    wanted = registry_macro()
    current = path.read_text() if path.exists() else ""
    if wanted != current and not check:
        path.write_text(wanted)
    return wanted == current
