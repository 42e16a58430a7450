"""What the graph runs against for one world: ports, policy, memory, audit, review queue.

Passed to the graph at each invoke as its runtime context; never stored in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from agent.context import Checkers, Context
from audit.log import AuditLog
from domain.models import Order, World
from domain.policy import Policy
from knowledge.memory import CaseMemory
from store.db import write
from store.holds import HoldDates
from store.orders import OrderBook
from store.review import ReviewQueue
from tools.model import GuardedModel
from tools.ports import WorldFacts
from tools.registry import ToolBox

AGENT = "agent"
_T = TypeVar("_T")


@dataclass
class Desk:
    world_id: str
    engine: Engine
    facts: WorldFacts
    toolbox: ToolBox
    policy: Policy
    checkers: Checkers
    memory: CaseMemory
    audit: AuditLog
    review: ReviewQueue
    orders: OrderBook
    model: GuardedModel | None = None  # contract §8: None when no endpoint is set
    _views: dict[str, tuple[Order, World]] = field(default_factory=dict, init=False, repr=False)

    @property
    def holds(self) -> HoldDates:
        """When holds until a date are released (``hold_until_date``)."""
        return HoldDates(self.engine)

    def order(self, order_id: str) -> Order:
        """The order as it stands now, from the orders port."""
        return self.toolbox.orders.get(order_id)

    def version(self, order_id: str) -> int:
        return self.orders.version(self.world_id, order_id)

    def context(self, order_id: str) -> Context:
        """The order as it stands, in the facts that bear on it. Detection and drafting in one
        run read the same facts: the view is kept while the order is unchanged."""
        order = self.order(order_id)
        kept = self._views.get(order_id)
        if kept is None or kept[0] != order:
            kept = (order, self.facts.view(order))
            self._views[order_id] = kept
        return Context(order=order, world=kept[1], policy=self.policy, checkers=self.checkers)

    def record(
        self,
        event: str,
        payload: dict[str, Any],
        *,
        key: str,
        change: Callable[[Connection], _T] | None = None,
        actor: str = AGENT,
    ) -> _T | None:
        """Make ``change`` to the desk's state and write the audit entry that records it, in
        one transaction: both commit or neither does. ``key`` makes it happen once."""

        def work(conn: Connection) -> _T | None:
            result = change(conn) if change is not None else None
            self.audit.append(actor, event, payload, key=key, conn=conn)
            return result

        return write(self.engine, work)
