"""Child processes that never outlive the command that started them (docs/operations.md, "Stopping").

`abos dbt`, dbt under Dagster (through `abos-dbt`) and `abos ui` start their child with `run_child`:
- the child leads its own process group, so stopping it reaches whatever it started in turn;
- Linux kills it when its parent dies, even by `kill -9` (prctl PR_SET_PDEATHSIG; `abos-dbt`,
  started by dagster-dbt, watches its parent instead);
- SIGTERM or SIGINT (Ctrl-C) to the parent stops the group: SIGTERM, then SIGKILL after
  `STOP_GRACE_SECONDS`, and the parent exits with 128 + the signal's number.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

import psutil

STOP_GRACE_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1


class Stopped(BaseException):
    """SIGTERM or SIGINT reached a command that stops cleanly: it exits with 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send `signum` to this process when its parent dies (elsewhere: nothing)."""
    if sys.platform == "linux":
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


def stop_with_parent() -> None:
    """Send this process SIGTERM once its parent is gone (a thread watches the parent's pid).

    For a process started by someone else's code, where `die_with_parent` cannot be set before exec;
    and PR_SET_PDEATHSIG set afterwards would fire when the *thread* that started us ends.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def stop_group(pgid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to every process of the group, then SIGKILL to those still there after `grace` seconds."""
    members = [p for p in psutil.process_iter() if _pgid(p.pid) == pgid]
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            return
        _, members = psutil.wait_procs(members, timeout=grace)
        if not members:
            return


def stop_children(grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop every descendant of this process: each one's group if it leads one, else the process."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            if _pgid(child.pid) == child.pid:
                os.killpg(child.pid, signal.SIGTERM)
            else:
                child.terminate()
        except (psutil.Error, ProcessLookupError, PermissionError):
            pass
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass


def run_child(command: Sequence[str], *, cwd: os.PathLike | str | None = None,
              env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()) -> int:
    """Run `command` in its own process group until it ends; its exit code, or 128 + the stop signal.

    Call from the main thread: it handles SIGTERM and SIGINT while the child runs.
    """
    received: list[int] = []
    process: subprocess.Popen | None = None

    def stop_child() -> None:
        # In a thread: a signal handler must not wait on the child the main thread is waiting on.
        threading.Thread(target=stop_group, args=(process.pid,), daemon=True).start()

    def stop(signum: int, _frame) -> None:
        received.append(signum)
        if process is not None:
            stop_child()

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}  # before the child exists
    try:
        process = subprocess.Popen(list(command), cwd=cwd, env=None if env is None else dict(env),
                                   pass_fds=tuple(pass_fds), process_group=0, preexec_fn=die_with_parent)
        if received:  # a signal came while it started
            stop_child()
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process is not None:
            stop_group(process.pid, grace=0.5)  # anything the child left behind in its group
    return 128 + received[0] if received else code


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None
