"""Screening: the fast path an order takes before (and mostly instead of) the graph.

An order is put in its world and run through every detector with no graph, no thread and no
checkpoint. Only an order with a finding (or with notes a model must read, which the graph
records for replay) goes on to the graph. A clean order is decided here: its decision is one
``order.detected`` entry, the same entry the graph's detect step writes (the order and the
facts view it read, the checkers' versions, the policy, no finding), under a thread id of its
own (``S-…``) that no graph thread has, so replay, ``audit prove`` and shadow decisions read
it as any other.

A ``Screener`` is kept for a run (a batch after another): it reads the world once, as a
snapshot, and again only when the world's revision has moved (a load, stock held or released
by an exception's plan), so each order's view costs no query.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.context import Checkers, Context
from agent.detect import detect
from agent.notes import must_read
from domain.digest import digest
from domain.models import Finding, Order
from domain.policy import Policy
from store.world import WorldSnapshot
from tools.model import GuardedModel
from tools.ports import WorldFacts, WorldSnapshots


def screened_thread_id(world_id: str, order_id: str, version: int, policy: Policy) -> str:
    """The id a screened decision is recorded under: like a graph thread's (``agent.runner``)
    but ``S-`` where threads are ``T-``, so the two never meet."""
    who = digest([world_id, order_id])[:16]
    return f"S-{who}-v{version}-{policy.digest[:12]}"


@dataclass(frozen=True)
class Screened:
    """One order screened: its context (what detection read) and what was found."""

    ctx: Context
    findings: list[Finding]

    @property
    def clean(self) -> bool:
        return not self.findings


class Screener:
    """Screens orders of one world against a snapshot of it (see the module)."""

    def __init__(
        self, facts: WorldFacts, checkers: Checkers, *, model: GuardedModel | None = None
    ) -> None:
        self._facts = facts
        self._checkers = checkers
        self._model = model
        self._snapshot: WorldSnapshot | None = None

    def refresh(self) -> None:
        """Read the world again if it changed (one small query when it did not)."""
        if isinstance(self._facts, WorldSnapshots):
            self._snapshot = self._facts.snapshot()

    @property
    def revision(self) -> int | None:
        """The revision of the world snapshot screenings read (None: no snapshot, each
        order's facts are read on their own)."""
        return None if self._snapshot is None else self._snapshot.revision

    def needs_graph(self, order: Order) -> bool:
        """Whether the order must go to the graph whatever screening finds: a model must
        read its notes, and that reading is made and recorded there."""
        return must_read(self._model, order)

    def screen(self, order: Order, policy: Policy) -> Screened:
        """Every detector over ``order`` in its world. Raises ``InputError`` when the order
        points at what its world lacks (a warehouse, a currency's rate)."""
        if self._snapshot is None:
            self.refresh()
        world = (
            self._snapshot.view(order) if self._snapshot is not None else self._facts.view(order)
        )
        ctx = Context(order=order, world=world, policy=policy, checkers=self._checkers)
        return Screened(ctx, detect(ctx))
