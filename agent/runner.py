"""Run an order through the graph, resume it after votes, and read back where it stands.

An order version under a policy is one thread, whose id is made of them: handling the same
unchanged order again finds its thread and replays its result; a thread a crash interrupted
goes on from its last checkpoint; a paused one settles what was approved meanwhile. One
process at a time works on an order (a lock shared through the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.types import Command

from agent.desk import Desk
from agent.graph import by_kind
from domain.digest import digest
from domain.models import Decision, Kind, Order, Plan, Proposal, ProposalStatus
from store.locks import named_lock


@dataclass(frozen=True)
class RunResult:
    thread_id: str
    order_id: str
    kinds: list[Kind]
    plans: dict[Kind, list[Plan]]
    decisions: dict[Kind, Decision]
    pending: dict[Kind, str]
    order_after: Order


def thread_id_for(desk: Desk, order_id: str, version: int) -> str:
    """The thread of one order version under one policy. Short whatever the ids' length, so
    the keys made from it fit every database."""
    who = digest([desk.world_id, order_id])[:16]
    return f"T-{who}-v{version}-{desk.policy.digest[:12]}"


def _kept(desk: Desk, drafted: list[Proposal], version: int) -> str | None:
    """The paused thread of this order version whose proposals a policy change kept for the
    version now deciding it (``service.policy_rebind``: the same decision, its votes stand),
    or None. The order handled again goes on there rather than being planned anew; not when
    any proposal of that thread is closed (void, superseded, run), which a new plan decides."""
    kept = {
        p.thread_id
        for p in drafted
        if p.status.is_open and p.order_version == version and p.policy_ref == desk.policy.ref
    }
    if len(kept) != 1:
        return None
    (thread,) = kept
    ours = [p for p in drafted if p.thread_id == thread]
    if all(p.status.is_open and p.policy_ref == desk.policy.ref for p in ours):
        return thread
    return None


class Runner:
    def __init__(
        self, graph: Any, *, durability: str = "async", lock_timeout: float = 120.0
    ) -> None:
        self._graph = graph
        self._durability = durability
        self._lock_timeout = lock_timeout

    def _config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    def handle(self, desk: Desk, order_id: str) -> RunResult:
        """Handle the order as it was last submitted (see the module for a second time)."""
        with named_lock(
            desk.engine, f"order:{desk.world_id}/{order_id}", timeout=self._lock_timeout
        ):
            version = desk.version(order_id)
            drafted = desk.review.find(world_id=desk.world_id, order_id=order_id)
            thread_id = _kept(desk, drafted, version) or thread_id_for(desk, order_id, version)
            start = {"thread_id": thread_id, "order_id": order_id, "order_version": version}
            self._advance(desk, thread_id, start)
            self._supersede_others(desk, order_id, thread_id)
            return self.result(desk, thread_id)

    def started(self, thread_id: str) -> bool:
        """Whether the graph has a thread ``thread_id`` (one checkpoint read)."""
        return bool(self._graph.get_state(self._config(thread_id)).values)

    def resume(self, desk: Desk, thread_id: str) -> RunResult:
        """Wake a paused (or interrupted) thread: approved proposals run, the rest wait."""
        order_id = self._graph.get_state(self._config(thread_id)).values.get("order_id")
        if order_id is None:
            raise LookupError(f"no graph thread {thread_id!r}")
        with named_lock(
            desk.engine, f"order:{desk.world_id}/{order_id}", timeout=self._lock_timeout
        ):
            self._advance(desk, thread_id, None)
            return self.result(desk, thread_id)

    def _advance(self, desk: Desk, thread_id: str, start: dict[str, Any] | None) -> None:
        config = self._config(thread_id)
        snapshot = self._graph.get_state(config)
        if not snapshot.values:
            if start is None:
                return
            payload: Any = start  # a new thread
        elif not snapshot.next:
            if snapshot.values.get("recorded"):
                return  # finished: its result stands
            # Ended without reaching its record (a step lost to a crash): run it again from
            # the start. Every step is keyed, so nothing is done twice.
            payload = {k: snapshot.values[k] for k in ("thread_id", "order_id", "order_version")}
        elif snapshot.interrupts:
            payload = Command(resume={"wake": True})
        else:
            payload = None  # stopped between steps (a crash): go on from the last checkpoint
        self._graph.invoke(payload, config, context=desk, durability=self._durability)

    def _supersede_others(self, desk: Desk, order_id: str, thread_id: str) -> None:
        """Open proposals of the order that its current thread did not draft are obsolete."""
        for earlier in desk.review.open_for(desk.world_id, order_id):
            if earlier.thread_id == thread_id:
                continue
            pid = earlier.proposal_id
            desk.record(
                "proposal.superseded",
                {"proposal_id": pid, "order_id": order_id, "by_thread": thread_id},
                key=f"{pid}:superseded:{thread_id}",
                change=lambda conn, pid=pid: desk.review.set_status(  # type: ignore[misc]
                    conn,
                    pid,
                    ProposalStatus.SUPERSEDED,
                    f"order handled again as {thread_id}",
                    only_from=(ProposalStatus.PENDING, ProposalStatus.APPROVED),
                ),
            )

    def result(self, desk: Desk, thread_id: str) -> RunResult:
        values = self._graph.get_state(self._config(thread_id)).values
        order_id = values["order_id"]
        return RunResult(
            thread_id=thread_id,
            order_id=order_id,
            kinds=[f.kind for f in values.get("findings", [])],
            plans=by_kind(values.get("plans")),
            decisions=by_kind(values.get("decisions")),
            pending=by_kind(values.get("pending")),
            order_after=desk.order(order_id),
        )
