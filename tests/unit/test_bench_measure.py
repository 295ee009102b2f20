"""The benchmark's memory figures (pipelines/bench/measure.py): a phase's peak RSS counts its child
processes, and an outer phase keeps the peak of everything inside it, inner phases included."""

import subprocess
import sys
import time

from pipelines.bench.measure import PeakRss

HOLD = 400 * 1024 * 1024  # bytes a child holds resident for a moment


def _hold_memory() -> None:
    # a child process that touches HOLD bytes (so they are resident), holds them, then exits
    subprocess.run([sys.executable, "-c", f"b = bytearray({HOLD}); import time; time.sleep(1.0)"], check=True)


def test_an_outer_phase_keeps_the_peak_of_a_child_before_an_inner_phase():
    with PeakRss() as rss, rss.phase() as outer:
        _hold_memory()  # the outer phase's peak, before the inner phase starts
        time.sleep(0.3)
        with rss.phase() as inner:
            time.sleep(0.3)
    assert outer["peak_rss_mib"] >= inner["peak_rss_mib"] + 300
    assert rss.peak / 2**20 >= outer["peak_rss_mib"] - 1  # the whole benchmark's peak


def test_an_outer_phase_keeps_the_peak_after_an_inner_phase_ended():
    # the two phases start within a sample of each other, often with the very same peak: ending the
    # inner one must not end the outer one's count
    with PeakRss() as rss, rss.phase() as outer:
        with rss.phase() as inner:
            pass
        _hold_memory()
        time.sleep(0.3)
    assert outer["peak_rss_mib"] >= inner["peak_rss_mib"] + 300
