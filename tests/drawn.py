"""The report charts drawn during a test: `charts.trend_chart` and `charts.retention_chart`, still drawing,
each call noted by name."""

from __future__ import annotations

import pytest

from pipelines.insights import charts


def charts_drawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on (for the test), the names of the report charts drawn, in order: a chart read back from
    a report's folder is not drawn, so it is not in the list."""
    drawn: list[str] = []

    def counted(draw):
        def drawing(*args, **kwargs):
            drawn.append(draw.__name__)
            return draw(*args, **kwargs)
        return drawing

    for name in ("trend_chart", "retention_chart"):
        monkeypatch.setattr(charts, name, counted(getattr(charts, name)))
    return drawn
