"""The sandbox the benchmark syncs from, served by `abos sandbox serve` in a process of its own.

A separate process keeps the fake APIs' work (rendering pages, writing bulk exports) off the
pipeline's interpreter and out of its memory figures, as real Shopify and Stripe servers would be.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pipelines.processes import die_with_parent
from pipelines.sandbox.simulation.tenants import split_size


@dataclass
class Served:
    info: dict[str, Any]  # the JSON line `abos sandbox serve` prints: base URLs and demo credentials
    pid: int

    def advance(self, days: float) -> dict[str, Any]:
        """Move the simulated clock forward; returns what changed, per workspace and kind."""
        request = urllib.request.Request(
            self.info["admin"]["advance"], data=json.dumps({"days": days}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=7200) as response:
            return json.load(response)


@contextmanager
def served(store: Path, *, size: str, seed: int, as_of: date, webhooks_url: str | None = None) -> Iterator[Served]:
    """Serve `store` (generated first when missing) on free loopback ports until the block ends;
    with `webhooks_url`, the sandbox delivers the webhooks of what each advance changes there."""
    sized, tenants = split_size(size)
    base, _, fraction = sized.partition("@")
    command = [sys.executable, "-m", "pipelines.cli", "sandbox", "serve", "--store", str(store), "--size", base,
               "--seed", str(seed), "--as-of", as_of.isoformat(), "--shopify-port", "0", "--stripe-port", "0"]
    if fraction:
        command += ["--scale", fraction]
    if tenants:
        command += ["--tenants", str(tenants)]
    if webhooks_url:
        command += ["--webhooks-url", webhooks_url]
    # Progress goes to our stderr; on Linux the sandbox also stops if this process is killed.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise RuntimeError(f"the sandbox did not start (exit code {process.wait()}); see its messages above")
        yield Served(json.loads(line), process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def working_copy(store: Path, copy: Path, *, size: str, seed: int, as_of: date) -> Path:
    """`copy`, a copy of the cached `store` (generated first when missing), for a benchmark that
    advances the sandbox's clock: a served store is reused as advanced (docs/sandbox.md), so the
    cached one must stay as generated for every run to start from the same data."""
    with served(store, size=size, seed=seed, as_of=as_of):
        pass
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store, copy)
    return copy
