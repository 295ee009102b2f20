"""The DuckDB write lock, without Dagster: `Warehouse.write_lock` (pipelines/warehouse.py) and `abos-dbt`
(pipelines/transform), which starts once per dbt command under Dagster and would pay seconds of CPU
to import Dagster for the `Warehouse` alone.

DuckDB lets one process write a file, and a reader cannot open it while another process writes, so
every access to a DuckDB warehouse holds an exclusive `flock` on `<file>.lock`. While it waits, a
caller holds a shared lock on `<file>.waiting`: a holder that keeps the lock across batches (the
webhook gateway) sees it there and lets go (`others_waiting`).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path(duckdb_path: Path) -> Path:
    """The file `duckdb_write_lock` locks, next to the DuckDB file."""
    return duckdb_path.with_suffix(".lock")


def waiting_path(duckdb_path: Path) -> Path:
    """The file waiting callers hold a shared lock on."""
    return duckdb_path.with_suffix(".waiting")


@contextmanager
def duckdb_write_lock(duckdb_path: Path, timeout: float | None = None) -> Iterator[int]:
    """Hold the write lock of the DuckDB file `duckdb_path`; yields the lock's file descriptor (a child
    process given it with `pass_fds` holds the lock too, until both have let go of it).

    Raises:
        TimeoutError: `timeout` seconds passed without the lock (None waits for as long as it takes).
    """
    locked = lock_path(duckdb_path)
    locked.parent.mkdir(parents=True, exist_ok=True)
    with open(locked, "w") as handle:
        with open(waiting_path(duckdb_path), "w") as waiting:
            fcntl.flock(waiting, fcntl.LOCK_SH)
            if timeout is None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"the warehouse {duckdb_path.name} "
                                               f"stayed locked by another writer for {timeout:g}s") from None
                        time.sleep(0.01)
        try:
            yield handle.fileno()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def others_waiting(duckdb_path: Path) -> bool:
    """Whether another caller of `duckdb_write_lock` is waiting for the lock of `duckdb_path` now."""
    with open(waiting_path(duckdb_path), "w") as waiting:
        try:
            fcntl.flock(waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(waiting, fcntl.LOCK_UN)
        return False
