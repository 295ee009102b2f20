"""`abos bench --detection`: the detection benchmark as users run it, and the detector's figures.

The benchmark is seeded, so its figures are the same on every machine; the targets of issue 14
(event-level F1 ≥ 0.8, at most 0.5 false alerts per series-month) are checked here, with the
rolling z-score baseline scored on the same series for comparison. The scan time is not checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def detection(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("detection") / "abos"
    env = {**os.environ, "ABOS_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "bench", "--detection", "--p5-workspaces", "10"],
                          env=env, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, f"abos bench --detection failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    reports = sorted((home / "bench").glob("detection-*.json"))
    assert len(reports) == 1
    result = json.loads(reports[0].read_text())
    result["_markdown"] = reports[0].with_suffix(".md").read_text()
    return result


def test_the_detector_meets_the_detection_targets_and_beats_the_baseline(detection):
    targets = detection["targets"]
    assert targets["detection_event_f1"]["met"], targets
    assert targets["detection_false_alerts_per_series_month"]["met"], targets
    ours, baseline = detection["detection"]["detector"], detection["detection"]["rolling_z4"]
    assert ours["all"]["f1"] > baseline["all"]["f1"]
    for family in ("amounts", "counts", "low_counts", "hourly"):
        assert ours[family]["events"] > 50, family  # every family has events to score
    assert "| detector | all |" in detection["_markdown"] and "P5_scan_seconds" in detection["_markdown"]
    assert detection["p5"]["series"] == 10 * 20
