"""The models a workspace's insights last estimated (`insights.model_fits`), so that a refresh after a
small change starts from them instead of estimating everything afresh.

A fit is the parameters of one model (the forecasts' ARIMA coefficients of one metric, the customer
values' BG/NBD and Gamma-Gamma parameters) and the data day of the full estimate they come from. For
REFIT_DAYS after that day a refresh reuses them: the forecasts run the stored coefficients over the
new history (forwarded, not re-estimated), the customer values start their optimizer from the stored
optimum. On the REFIT_DAYS-th day, or when the model's shape changed (a new holiday seen, a year of
history reached), everything is estimated afresh. Where the results then differ from a fresh
estimate, and by how much: docs/metrics.md ("Forecasts", "Predicted LTV").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import pandas as pd

REFIT_DAYS = 7  # a model is estimated afresh at least once a week of data days
TABLE = "insights.model_fits"
COLUMNS = ["workspace_id", "model", "estimated_on", "params"]


@dataclass(frozen=True)
class Fit:
    """One model's parameters (JSON-able) and the last data day of the full estimate they come from."""

    estimated_on: date
    params: dict

    def usable_on(self, day: date) -> bool:
        """Whether a refresh whose last data day is `day` may start from this fit."""
        return 0 <= (day - self.estimated_on).days < REFIT_DAYS


def read_fits(rows: pd.DataFrame | None) -> dict[str, Fit]:
    """The stored fits by model name, from a workspace's rows of `insights.model_fits` (None: no table)."""
    if rows is None or rows.empty:
        return {}
    return {row.model: Fit(pd.Timestamp(row.estimated_on).date(), json.loads(row.params))
            for row in rows.itertuples(index=False)}


def fit_rows(workspace_id: str, fits: dict[str, Fit]) -> pd.DataFrame:
    """The rows of `insights.model_fits` for a workspace's fits (floats kept exactly: JSON writes their repr)."""
    return pd.DataFrame([{"workspace_id": workspace_id, "model": name, "estimated_on": fit.estimated_on,
                          "params": json.dumps(fit.params)} for name, fit in sorted(fits.items())],
                        columns=COLUMNS)
