"""Seeded synthetic metric series with injected anomalies, and the anomaly-scan benchmark (P5).

The P5 target of the scale issue is a scan of 1,000 workspaces × 20 metrics × 730 days in ≤ 30 s
on 2 cores. `metric_frame` builds that input with known anomalies; `benchmark` times the scan and
scores it against the injected truth. Run it with:

    .venv/bin/python -m pipelines.insights.synthetic --workspaces 1000 --metrics 20 --days 730
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.insights.anomalies import detect_many

WARM_UP_DAYS = 60  # no anomaly is injected before the detector has history to judge it


@dataclass(frozen=True)
class Synthetic:
    """A wide frame of daily metrics (columns: workspace, metric) and the anomalies injected in it."""

    frame: pd.DataFrame
    truth: pd.DataFrame  # workspace, metric, date, kind ("spike", "dip", "shift"), factor


def metric_frame(workspaces: int = 1000, metrics: int = 20, days: int = 730, *, seed: int = 0,
                 anomalies_per_series: float = 2.0) -> Synthetic:
    """Daily series shaped like business metrics, with spikes, dips and level shifts injected.

    Each series has its own level (from tens to tens of thousands), yearly growth, weekly shape,
    a yearly wave and noise. Even-numbered metrics are amounts with noise proportional to their
    level; odd-numbered ones are Poisson counts. Anomalies are multiplicative: a one-day spike
    (×1.6 to ×2.5), a one-day dip (×0.1 to ×0.5) or a lasting shift (×0.6 or ×1.5 onwards).

    Args:
        workspaces: number of businesses.
        metrics: metrics per business.
        days: length of every series, ending on 2025-12-31.
        seed: everything drawn depends only on it.
        anomalies_per_series: mean number of injected anomalies per series (Poisson).
    """
    rng = np.random.default_rng(seed)
    n_series = workspaces * metrics
    t = np.arange(days)
    dates = pd.date_range(end="2025-12-31", periods=days, freq="D", name="date")

    level = np.exp(rng.uniform(np.log(20), np.log(20_000), n_series))[:, None]
    growth = 1 + rng.uniform(-0.1, 0.6, n_series)[:, None] * t / 365
    weekly = 1 + rng.uniform(0, 0.4, (n_series, 7)) - 0.2
    weekday = weekly[:, dates.day_of_week.to_numpy()]
    yearly = 1 + rng.uniform(0, 0.15, n_series)[:, None] * np.sin(2 * np.pi * (t / 365.25 + rng.uniform(0, 1, (n_series, 1))))
    mean = level * growth * weekday * yearly

    # Anomalies as log-factors: one-day ones at their day, shifts as steps summed over time.
    total = rng.poisson(anomalies_per_series * n_series)
    where = pd.DataFrame({"series": rng.integers(0, n_series, total),
                          "day": rng.integers(WARM_UP_DAYS, days, total)}).drop_duplicates()
    series, day = where["series"].to_numpy(), where["day"].to_numpy()
    kind = rng.choice(np.array(["spike", "dip", "shift"]), len(where))
    size = np.select(
        [kind == "spike", kind == "dip"],
        [rng.uniform(1.6, 2.5, len(where)), rng.uniform(0.1, 0.5, len(where))],
        rng.choice([0.6, 1.5], len(where)),
    )
    one_day, steps = np.zeros((n_series, days)), np.zeros((n_series, days))
    np.add.at(one_day, (series[kind != "shift"], day[kind != "shift"]), np.log(size[kind != "shift"]))
    np.add.at(steps, (series[kind == "shift"], day[kind == "shift"]), np.log(size[kind == "shift"]))
    mean = mean * np.exp(one_day + np.cumsum(steps, axis=1))

    amounts = np.arange(n_series) % metrics % 2 == 0
    values = np.empty_like(mean)
    values[amounts] = mean[amounts] * rng.normal(1, 0.05, (amounts.sum(), days)).clip(0)
    values[~amounts] = rng.poisson(mean[~amounts])

    columns = pd.MultiIndex.from_product(
        [[f"ws-{i:04d}" for i in range(workspaces)], [f"metric_{j:02d}" for j in range(metrics)]],
        names=["workspace", "metric"],
    )
    frame = pd.DataFrame(values.T, index=dates, columns=columns)
    injected = pd.DataFrame({
        "workspace": columns.get_level_values("workspace")[series],
        "metric": columns.get_level_values("metric")[series],
        "date": dates[day],
        "kind": kind,
        "factor": size,
    }).sort_values(["workspace", "metric", "date"], ignore_index=True)
    return Synthetic(frame, injected)


def benchmark(workspaces: int = 1000, metrics: int = 20, days: int = 730, *, seed: int = 0,
              workers: int = 2) -> dict[str, float]:
    """Time the anomaly scan on synthetic input and score it against the injected anomalies.

    Returns:
        Seconds to generate and to scan (wall and CPU), points per second, the share of injected anomalies
        flagged on their day, and alerts on other days per series per 90 judged days. The
        latter includes days just after an injected shift, so it overstates false alerts.
    """
    started = time.perf_counter()
    synthetic = metric_frame(workspaces, metrics, days, seed=seed)
    generated = time.perf_counter()
    cpu = time.process_time()
    found = detect_many(synthetic.frame, anomalies_only=True, workers=workers)
    scanned = time.perf_counter()
    cpu = time.process_time() - cpu

    flagged = found.index.to_frame(index=False)
    hits = synthetic.truth.merge(flagged, on=["workspace", "metric", "date"], how="inner")
    injected_keys = pd.MultiIndex.from_frame(synthetic.truth[["workspace", "metric", "date"]])
    others = (~found.index.isin(injected_keys)).sum()
    series = workspaces * metrics
    return {
        "series": series,
        "points": series * days,
        "generate_s": round(generated - started, 2),
        "scan_s": round(scanned - generated, 2),
        "scan_cpu_s": round(cpu, 2),  # all threads; tells a busy machine from a slow scan
        "points_per_s": round(series * days / (scanned - generated)),
        "injected": len(synthetic.truth),
        "recall": round(len(hits) / max(1, len(synthetic.truth)), 3),
        "other_alerts_per_series_per_90_days": round(others / series / (days - 42) * 90, 3),
    }


def main() -> None:
    """Command line: run `benchmark` and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(benchmark(args.workspaces, args.metrics, args.days, seed=args.seed, workers=args.workers)))


if __name__ == "__main__":
    main()
