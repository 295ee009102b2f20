"""The walk a customer's life is replayed with: actions in time order, and the events and MRR they leave.

Every random draw comes from one generator seeded by the customer's key, in the order the walk
processes its actions, so walking to time T always processes the same prefix of actions
(saas/lifecycle.py tells the story the actions make).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Self

from pipelines.sandbox.simulation.saas.objects import Customer, Discount, Invoice, Sub, WalkEvent, World
from pipelines.sandbox.simulation.simulator import rng, stable_id

# (kind, object, event type, JSON before the change or None for creations, event number, user request?)
PendingEvent = tuple[str, Any, str, "dict[str, Any] | None", int, bool]
Renderer = Callable[[str, Any, bool], dict[str, Any]]


class Walk:
    """A customer's objects and the queue of its future actions, processed in time order by `run`.

    Args:
        world: the business this customer belongs to.
        plan: the stored plan: `key` (signup day and index), `created`, and optionally `campaign`.
        events: `(first, last)` Unix times (inclusive) whose events are rendered into `events`.
        render: renders an object to Stripe JSON (`StripeRenderer.render`); needed only with `events`.
        track_mrr: record the customer's MRR after every change in `mrr_points`.
    """

    def __init__(self, world: World, plan: dict[str, Any], *, events: tuple[int, int] | None = None,
                 render: Renderer | None = None, track_mrr: bool = False):
        self.world = world
        self.rates = world.rates
        self.plan = plan
        self.rng = rng(world.seed, world.workspace, "customer", *plan["key"])
        # Every id of this customer's objects extends this key (one hash per customer, not per object).
        self.key = stable_id(world.seed, world.workspace, "cus", *plan["key"])
        self.events_window = events
        self.render = render
        self.track_mrr = track_mrr
        self.customer: Customer | None = None
        self.subs: list[Sub] = []
        self.invoices: list[Invoice] = []
        self.discounts: list[Discount] = []
        self.events: list[WalkEvent] = []
        self.events_in_window = 0
        self.redemptions: list[tuple[int, str]] = []
        self.mrr_points: list[tuple[int, Decimal, int]] = []  # (time, MRR, active subscriptions)
        self.now = plan["created"]
        self._heap: list[tuple[int, int, Callable[..., None], tuple]] = []
        self._seq = 0
        self._event_seq = 0
        self._pending: list[PendingEvent] = []
        self._mrr_dirty = False  # a subscription changed since MRR was last recorded

    def run(self, until: int) -> Self:
        """Process every action at or before `until`."""
        while self._heap and self._heap[0][0] <= until:
            when, _, action, args = heapq.heappop(self._heap)
            self.now = when
            action(*args)
            if self._pending:
                self._flush()
            if self.track_mrr and self._mrr_dirty:
                self._record_mrr()
        return self

    @property
    def next_due(self) -> int | None:
        """When the next change happens (None: this customer never changes again)."""
        return self._heap[0][0] if self._heap else None

    def _schedule(self, when: int, action: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action, args))

    def _emitting(self) -> bool:
        window = self.events_window
        return window is not None and window[0] <= self.now <= window[1]

    def _touch(self, kind: str, obj: Any, event: str | None, *, created: bool = False,
               request: bool = False) -> None:
        """Record that `obj` changes now. Call before mutating it (after, for creations)."""
        obj.updated = self.now
        if kind == "subscription":
            self._mrr_dirty = True
        if event is None:  # Stripe sends no event for this change (e.g. next_invoice_sequence)
            return
        self._event_seq += 1
        if not self._emitting():
            return
        self.events_in_window += 1
        if self.render is None:
            return
        before = None if created else self.render(kind, obj, True)
        self._pending.append((kind, obj, event, before, self._event_seq, request))

    def _flush(self) -> None:
        for kind, obj, event, before, number, request in self._pending:
            after = self.render(kind, obj, True)
            previous = None
            if event.endswith(".updated"):
                previous = {k: v for k, v in before.items() if after.get(k) != v}
            self.events.append(WalkEvent(self.now, number, event, after, previous, request))
        self._pending = []

    def _record_mrr(self) -> None:
        self._mrr_dirty = False
        mrr = sum((sub.mrr() for sub in self.subs), Decimal(0))
        active = sum(1 for sub in self.subs if sub.mrr() > 0)  # docs/metrics.md: active = MRR > 0
        if not self.mrr_points or self.mrr_points[-1][1:] != (mrr, active):
            self.mrr_points.append((self.now, mrr, active))
