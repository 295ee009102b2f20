"""The simulation's entry points: generate a store, advance its clock, and tell the ground truth.

They run the vertical simulators (`shop/`, `saas/`) that build on `simulator.py`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from pipelines.sandbox.simulation import matrix
from pipelines.sandbox.simulation.saas.simulator import SaasSimulator
from pipelines.sandbox.simulation.shop.simulator import ShopSimulator
from pipelines.sandbox.simulation.simulator import (STORE_FORMAT, BusinessSimulator, Progress, history_days, iso, specs)
from pipelines.sandbox.core.store import SandboxStore


def simulators(seed: int, size: str, start: date) -> list[BusinessSimulator]:
    """One simulator per business of `size`, all starting on day `start`."""
    return [
        (ShopSimulator if spec.source == "shopify" else SaasSimulator)(spec, seed=seed, start=start, size=size)
        for spec in specs(size)
    ]


def _loaded(store: SandboxStore) -> list[BusinessSimulator]:
    params = store.get_meta("params")
    if not params:
        raise RuntimeError(f"{store.path} holds no simulation; run generate first")
    return simulators(params["seed"], params["size"], date.fromisoformat(params["start"]))


def generate(
    store: SandboxStore, *, seed: int, size: str, as_of: date, progress: Progress = lambda _: None
) -> None:
    """Fill an empty store with `size`'s businesses, simulated up to the end of day `as_of`."""
    start = as_of - timedelta(days=history_days(size))
    sims = simulators(seed, size, start)
    # End of as_of in UTC: every business has lived through its whole as_of day (UTC-based clock).
    until = int(datetime.combine(as_of + timedelta(days=1), time(0), timezone.utc).timestamp()) - 1
    store.set_meta("params", {"seed": seed, "size": size, "as_of": as_of.isoformat(), "start": start.isoformat(),
                              "format": STORE_FORMAT})
    for sim in sims:
        store.put_account(sim.spec.workspace, sim.spec.source, sim.account())
        progress(f"generating {sim.spec.workspace} ({sim.spec.source}, {size})")
        sim.generate(store, until, progress)
    store.set_meta("anomalies", [a for sim in sims for a in sim.anomalies()])
    store.set_clock(until)


def advance(store: SandboxStore, *, days: float | None = None, to: int | None = None) -> dict[str, Any]:
    """Move the clock forward by `days` or to Unix time `to`, applying every change on the way."""
    since = store.clock
    until = to if to is not None else since + int(round((days or 0) * 86400))
    if until < since:
        raise ValueError(f"the sandbox clock only moves forward (now {iso(since)}, asked {iso(until)})")
    changed: dict[str, Any] = {}
    if store.get_meta("params"):  # fixture stores have no simulation: only the clock moves
        for sim in _loaded(store):
            changed[sim.spec.workspace] = sim.advance(store, since, until)
    store.set_clock(until)
    return {"from": iso(since), "to": iso(until), "changed": changed}


def truth(store: SandboxStore) -> dict[str, Any]:
    """`abos sandbox truth`: what the warehouse must hold after a complete, exact sync."""
    params = store.get_meta("params") or {}
    result: dict[str, Any] = {"params": params, "clock": iso(store.clock), "workspaces": {}}
    if params:
        for sim in _loaded(store):
            result["workspaces"][sim.spec.workspace] = {"source": sim.spec.source, **sim.truth(store)}
    if matrix.is_matrix(store):
        result["workspaces"] = matrix.truth(store)
    result["anomalies"] = store.get_meta("anomalies", [])
    return result
