"""What the benchmark measures besides wall time: peak memory (with child processes) and the machine."""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version

import psutil

SAMPLE_SECONDS = 0.1


class PeakRss:
    """Samples the resident memory of this process plus its children (dbt, ...) in a thread.

    Processes in `exclude` and their descendants (the sandbox serving the fake APIs) are left out:
    they stand in for Shopify's and Stripe's servers, not for our pipeline.
    """

    def __init__(self) -> None:
        self.exclude: set[int] = set()
        self.peak = 0
        self._phase_peaks: list[list[int]] = []  # one cell per open phase (phases nest), updated by every sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _excluded(self) -> list[psutil.Process]:
        """The excluded processes that still run, and their descendants."""
        found: list[psutil.Process] = []
        for pid in self.exclude:
            try:
                process = psutil.Process(pid)
                found += [process, *process.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return found

    def sample(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        skipped = {process.pid for process in self._excluded()}
        for child in me.children(recursive=True):
            if child.pid in skipped:
                continue
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.sample()
            self.peak = max(self.peak, rss)
            for cell in list(self._phase_peaks):
                cell[0] = max(cell[0], rss)
            self._stop.wait(SAMPLE_SECONDS)

    def excluded_cpu_seconds(self) -> float:
        """User and system CPU seconds so far of the excluded processes (the sandbox) and their children,
        those that ended included (the sandbox's Shopify export process, which the sandbox reaps when it
        stops or the process dies)."""
        total = 0.0
        for process in self._excluded():
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        return total

    @contextmanager
    def phase(self) -> Iterator[dict[str, float]]:
        """Peak RSS (MiB), wall seconds and CPU seconds of the code in the `with` block, filled in on
        exit. `cpu_seconds` counts this process and the children it waited for (dbt), the benchmark's
        process tree without the sandbox: on a shared machine it moves less with the load than wall
        time does. `api_cpu_seconds` is the sandbox's (the excluded processes'), the stand-in for
        Shopify's and Stripe's servers, which shares this machine's cores."""
        found: dict[str, float] = {}
        peak = [self.sample()]
        self._phase_peaks.append(peak)
        started, cpu, api_cpu = time.perf_counter(), cpu_seconds(), self.excluded_cpu_seconds()
        try:
            yield found
        finally:
            found["seconds"] = round(time.perf_counter() - started, 3)
            found["cpu_seconds"] = round(cpu_seconds() - cpu, 3)
            found["api_cpu_seconds"] = round(self.excluded_cpu_seconds() - api_cpu, 3)
            self._phase_peaks = [cell for cell in self._phase_peaks if cell is not peak]  # by identity
            found["peak_rss_mib"] = mib(peak[0])


@contextmanager
def stage(rss: PeakRss, progress: Callable[[str], None], name: str) -> Iterator[dict[str, float]]:
    """`rss.phase()` that tells the operator when `name` starts and, with its wall and CPU seconds
    (the benchmark's process tree, dbt included), when it ended."""
    progress(name)
    with rss.phase() as found:
        yield found
    progress(f"{name}: done in {found['seconds']:.1f} s, {found['cpu_seconds']:.1f} CPU s")


def cpu_seconds() -> float:
    """User and system CPU seconds of this process and of its children that ended."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def mib(size: int) -> float:
    return round(size / 2**20, 1)


def machine() -> dict[str, object]:
    """The machine and software the figures come from."""
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu_model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                             cpu_model)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: version(name) for name in ("dlt", "duckdb", "pyarrow", "dbt-core", "dagster")},
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]
