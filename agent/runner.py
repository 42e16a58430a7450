"""Run an order through the graph, resume it after votes, and read back where it stands."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langgraph.types import Command

from agent.desk import AGENT, Desk
from domain.models import Order


@dataclass(frozen=True)
class RunResult:
    thread_id: str
    order_id: str
    kinds: list[str]
    plans: dict[str, list[dict[str, Any]]]
    decisions: dict[str, dict[str, Any]]
    pending: dict[str, str]
    order_after: Order

    def exceptions(self) -> list[dict[str, Any]]:
        """The report's per-kind entries (contract §6)."""
        return [
            {
                "kind": kind,
                "plans": self.plans.get(kind, []),
                "decision": self.decisions.get(kind, {}),
            }
            for kind in self.kinds
        ]


def new_thread_id(world_id: str, order_id: str) -> str:
    return f"{world_id}/{order_id}/{uuid.uuid4().hex[:12]}"


class Runner:
    def __init__(self, graph: Any, *, durability: str = "sync") -> None:
        self._graph = graph
        self._durability = durability

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    def handle(self, desk: Desk, order_id: str, *, thread_id: str | None = None) -> RunResult:
        """Start a new thread for the order, as it stands in the desk's world."""
        thread_id = thread_id or new_thread_id(desk.world_id, order_id)
        desk.store.set_thread(desk.world_id, order_id, thread_id)
        self._graph.invoke(
            {"thread_id": thread_id, "order_id": order_id},
            self._config(thread_id),
            context=desk,
            durability=self._durability,
        )
        self._supersede_others(desk, order_id, thread_id)
        return self.result(desk, thread_id)

    def _supersede_others(self, desk: Desk, order_id: str, thread_id: str) -> None:
        """Open proposals of the order that this run did not draft again are obsolete."""
        for earlier in desk.review.open_for(desk.world_id, order_id):
            if earlier.thread_id == thread_id:
                continue
            desk.review.set_status(
                earlier.proposal_id, "superseded", f"order re-run as {thread_id}"
            )
            desk.audit.append(
                AGENT,
                "proposal.superseded",
                {"proposal_id": earlier.proposal_id, "order_id": order_id, "by_thread": thread_id},
            )

    def resume(self, desk: Desk, thread_id: str) -> RunResult:
        """Wake a paused thread: approved proposals run, the rest keep waiting."""
        self._graph.invoke(
            Command(resume={"wake": True}),
            self._config(thread_id),
            context=desk,
            durability=self._durability,
        )
        return self.result(desk, thread_id)

    def result(self, desk: Desk, thread_id: str) -> RunResult:
        values = self._graph.get_state(self._config(thread_id)).values
        order_id = values["order_id"]
        return RunResult(
            thread_id=thread_id,
            order_id=order_id,
            kinds=[f["kind"] for f in values.get("findings", [])],
            plans=values.get("plans", {}),
            decisions=values.get("decisions", {}),
            pending=values.get("pending", {}),
            order_after=desk.order(order_id),
        )
