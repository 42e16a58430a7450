"""What the graph runs against for one world: ports, policy, memory, audit, review queue.

Passed to the graph at each invoke as its runtime context; never stored in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.context import Checkers, Context
from domain.models import Order
from domain.policy import Policy
from knowledge.memory import CaseMemory
from store.review import ReviewQueue
from store.worlds import WorldStore
from tools.registry import ToolBox
from tools.simulated import SimWorld

AGENT = "agent"


class AuditSink(Protocol):
    def append(self, actor: str, event: str, payload: dict[str, Any]) -> Any: ...

    def append_many(self, items: Sequence[tuple[str, str, dict[str, Any]]]) -> Any: ...


@dataclass
class Desk:
    world_id: str
    sim: SimWorld
    toolbox: ToolBox
    policy: Policy
    checkers: Checkers
    memory: CaseMemory
    audit: AuditSink
    review: ReviewQueue
    store: WorldStore

    def order(self, order_id: str) -> Order:
        return self.toolbox.orders.get(order_id)

    def context(self, order_id: str) -> Context:
        return Context(
            order=self.order(order_id),
            world=self.sim.snapshot(),
            policy=self.policy,
            checkers=self.checkers,
        )

    def commit(self) -> None:
        """Write what the tools changed to the store."""
        self.store.save(self.world_id, self.sim)
