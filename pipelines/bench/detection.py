"""`abos bench --detection`: the detection benchmark and the P5 scan alone, without a sandbox.

The detection benchmark (`insights.synthetic.detection_benchmark`, docs/anomalies.md) scores the
anomaly detector event by event on labeled business series; P5 times the scan of 1,000 workspaces
× 20 metrics × 730 days. Both take well under a minute, so they can run on every change to the
detector; the full `abos bench` runs them too.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable

from pipelines.bench import report
from pipelines.bench.measure import load_average, machine
from pipelines.settings import load_settings


def detection_phase(progress: Callable[[str], None] = print) -> dict[str, Any]:
    """The detection benchmark's figures (see `insights.synthetic.detection_benchmark`)."""
    from pipelines.insights.synthetic import detection_benchmark

    progress("detection: scoring the detector on the labeled benchmark series")
    return detection_benchmark()


def run_detection_bench(p5_workspaces: int = 1000, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the detection benchmark and P5; write `detection-<time>.json` and `.md` under ABOS_HOME/bench/."""
    from pipelines.insights.synthetic import benchmark

    home = load_settings().home / "bench"
    home.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(timezone.utc)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    result: dict[str, Any] = {"started_at": started_at.isoformat(timespec="seconds"), "machine": machine(),
                              "load_average": {"start": load_average()}}
    result["detection"] = detection_phase(progress)
    progress(f"P5: anomaly scan of {p5_workspaces} workspaces × 20 metrics × 730 days")
    result["p5"] = benchmark(p5_workspaces, 20, 730)
    result["load_average"]["end"] = load_average()
    result["targets"] = {**report.detection_targets(result["detection"]),
                         "P5_scan_seconds": report.p5_target(result["p5"])}
    files = {"json": home / f"detection-{stamp}.json", "markdown": home / f"detection-{stamp}.md"}
    result["files"] = {name: str(path) for name, path in files.items()}
    files["json"].write_text(json.dumps(result, indent=2) + "\n")
    files["markdown"].write_text(report.detection_markdown(result))
    return result
