"""Handle orders a batch at a time: screen every order, decide the clean ones together, and send
only the ones with a finding through the graph (``agent.screen``).

What a batch shares: the policy state is read once, the world once (a snapshot, read again
only when its revision moves), what the store holds of the batch's orders in one query; the
clean orders' submissions and decisions (one ``order.detected`` entry each) commit in one
transaction under one signed checkpoint.

Orders are taken in their order. An order with a finding is handled (``usecases.handle``)
after the clean orders before it have committed, and the world is looked at again after it,
so each order is screened against the world as the orders before it left it, as if one at a
time: a run cut short (SIGKILL) and run again comes to what one clean run does. What held
for one order holds for a batch: an unchanged order run again (screened clean before, or
handled by the graph) changes nothing and writes nothing; processes running the same orders
at once decide each once (a submission another process committed first is theirs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from agent import playbooks
from agent.inputs import detected_payload, policy_entry
from agent.learn import learned_summary
from agent.rank import situation_for
from agent.runner import RunResult, thread_id_for
from agent.screen import Screened, Screener, screened_thread_id
from domain.errors import ExdeskError
from domain.models import Order
from domain.policy import Policy
from knowledge.situation import describe
from knowledge.store import MemoryBase
from service import usecases
from service.shadow import decide_beside_quietly
from service.wiring import Exdesk
from store.db import write
from store.orders import Submission

BATCH_SIZE = 500
Outcome = RunResult | ExdeskError


class Superseded(ExdeskError):
    """Not a fault: an order submitted before ``run_batch`` (a stream worker's claim) whose
    stored content is no longer its own, because a newer event of it was submitted meanwhile.
    It is not decided again: the newer event's decision is the order's."""


@dataclass
class _Clean:
    index: int
    screened: Screened
    policy: Policy
    version: int | None  # None: a new submission (its version is known when it is taken)
    seal: str  # the order's digest (``OrderBook.seal``)


@dataclass
class Batches:
    """``run_batch`` over many batches of one world, keeping the screener (and so the world's
    snapshot) from one batch to the next."""

    app: Exdesk
    world_id: str
    actor: str = "operator"
    role: str | None = None
    screener: Screener = field(init=False)

    def __post_init__(self) -> None:
        desk = self.app.desk(self.world_id)
        self.screener = Screener(desk.facts, self.app.checkers, model=self.app.model)

    def run(self, orders: Sequence[Order]) -> list[Outcome]:
        return run_batch(
            self.app,
            self.world_id,
            orders,
            screener=self.screener,
            actor=self.actor,
            role=self.role,
        )


def batched(items: Iterable[Any], size: int = BATCH_SIZE) -> Iterator[list[Any]]:
    """``items`` in lists of ``size``, read as they come (never all at once)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_batch(
    app: Exdesk,
    world_id: str,
    orders: Sequence[Order],
    *,
    screener: Screener | None = None,
    actor: str = "operator",
    role: str | None = None,
    on_decided: Callable[[int, Outcome], None] | None = None,
    submitted: Mapping[str, Submission] | None = None,
    stop: threading.Event | None = None,
) -> list[Outcome]:
    """Handle ``orders`` in their order (see the module): each one's result, or the error
    that stopped it (an order its world cannot serve), in the same order. ``on_decided``
    hears each order's outcome (by its index) as soon as its decision has committed, before
    the rest of the batch is done (a stream worker acks it then).

    ``submitted``: the orders were submitted already, under their stream claims (each
    one's ``Submission`` by order id). None is submitted again: one whose stored content is
    not its own any more gets ``Superseded`` (a newer event of it came meanwhile), and one
    with a finding goes to the graph as it was last submitted. One whose claim made its
    first version has no proposals and no graph thread to look for. Once ``stop`` is set no
    further order is taken: the outcomes are those of the orders before it (a stream worker
    hands the rest back)."""
    app.refresh_policy()
    if screener is None:
        screener = Screener(app.desk(world_id).facts, app.checkers, model=app.model)
    screener.refresh()
    stored = app.orders.states(world_id, [o.order_id for o in orders])
    earlier = _screened_before(app, world_id, orders, stored)
    seals = [app.orders.seal(o) for o in orders]
    decided: dict[int, str] = {}  # unchanged orders screened clean before: their ids
    for i, o in enumerate(orders):
        known = stored.get(o.order_id)
        if known is not None and known.digest == seals[i]:
            sid = screened_thread_id(
                world_id, o.order_id, known.version, app.policy_for(o.order_id)
            )
            if sid in earlier:
                decided[i] = sid
    ahead = _screen_ahead(app, screener, orders, skip=set(decided))
    out: list[Outcome | None] = [None] * len(orders)

    def settle(index: int, outcome: Outcome) -> None:
        out[index] = outcome
        if on_decided is not None:
            on_decided(index, outcome)

    clean: list[_Clean] = []
    waiting: set[str] = set()  # the order ids in ``clean``
    for index, order in enumerate(orders):
        if stop is not None and stop.is_set():
            break
        policy = app.policy_for(order.order_id)
        known = stored.get(order.order_id)
        seal = seals[index]
        unchanged = known is not None and known.digest == seal
        if not clean:
            waiting.clear()
        if order.order_id in waiting:
            _flush(app, world_id, clean, settle, actor=actor, role=role)  # the same order again
            waiting.clear()
            unchanged, known = False, None
        if submitted is not None and not unchanged:  # a newer event of it was submitted since
            settle(index, Superseded(f"order {order.order_id}: a newer version came first"))
            continue
        if unchanged and index in decided:  # screened clean before: its decision stands
            settle(index, _clean_result(decided[index], order))
            continue
        early = ahead.get(index)
        try:
            if screener.needs_graph(order):
                screened = None
            elif early is not None and early[0] == screener.revision:
                screened = early[1].value()  # screened ahead, and the world is as it was
            else:
                screened = screener.screen(order, policy)
        except ExdeskError as exc:  # the world cannot serve it: nothing stored, said why
            settle(index, exc)
            continue
        version = known.version if unchanged and known is not None else None
        first = submitted is not None and submitted.get(order.order_id) == Submission(1, True)
        if (
            screened is not None
            and screened.clean
            and not (
                known is not None and not first and _agent_has_it(app, world_id, order, version)
            )
        ):
            clean.append(_Clean(index, screened, policy, version, seal))
            waiting.add(order.order_id)
            continue
        _flush(app, world_id, clean, settle, actor=actor, role=role)
        try:
            handled: Outcome = usecases.handle(
                app, world_id, order, actor=actor, role=role, submit_it=submitted is None
            )
        except ExdeskError as exc:
            handled = exc
        settle(index, handled)
        screener.refresh()  # what the order's plan did to stock shows in the next ones' view
    _flush(app, world_id, clean, settle, actor=actor, role=role)
    done = [o for o in out if o is not None]
    assert len(done) == len(orders) or (stop is not None and stop.is_set())
    return done


@dataclass(frozen=True)
class _Ahead:
    screened: Screened | None
    error: ExdeskError | None

    def value(self) -> Screened:
        if self.error is not None:
            raise self.error
        assert self.screened is not None
        return self.screened


def _screen_ahead(
    app: Exdesk, screener: Screener, orders: Sequence[Order], *, skip: set[int]
) -> dict[int, tuple[int, _Ahead]]:
    """Screen the batch against the world as it stands, before any of it is handled: the
    screenings stand for orders the world has not changed for meanwhile, and the case
    memory embeds the exceptions' searches, and the cases they will likely teach it, in one
    call each (``warm``) instead of one per order."""
    revision = screener.revision
    if revision is None:
        return {}
    ahead: dict[int, tuple[int, _Ahead]] = {}
    queries: list[str] = []
    summaries: list[str] = []
    for index, order in enumerate(orders):
        if index in skip or screener.needs_graph(order):
            continue
        policy = app.policy_for(order.order_id)
        try:
            screened = screener.screen(order, policy)
        except ExdeskError as exc:
            ahead[index] = (revision, _Ahead(None, exc))
            continue
        ahead[index] = (revision, _Ahead(screened, None))
        for finding in screened.findings:
            situation = situation_for(screened.ctx, finding)
            queries.append(describe(situation))
            # What it will learn when its plan works: a case of one of its drafts' strategies.
            drafts = playbooks.draft(screened.ctx, finding)
            summaries += [learned_summary(situation, d.strategy.value, True) for d in drafts]
    memory = app.case_memory if queries else None
    if isinstance(memory, MemoryBase):
        memory.warm(queries, summaries)
    return ahead


def _screened_before(
    app: Exdesk, world_id: str, orders: Sequence[Order], stored: dict[str, Any]
) -> set[str]:
    """The screened ids of the batch's unchanged orders that were decided clean before."""
    ids = {}
    for order in orders:
        known = stored.get(order.order_id)
        if known is not None:
            sid = screened_thread_id(
                world_id, order.order_id, known.version, app.policy_for(order.order_id)
            )
            ids[f"{sid}:detected"] = sid
    return {ids[k] for k in app.audit.keys_present(list(ids))} if ids else set()


def _agent_has_it(app: Exdesk, world_id: str, order: Order, version: int | None) -> bool:
    """Whether a clean order the store knows must still go to the agent: it has open
    proposals (a new version supersedes them there; the agent settles what an unchanged one
    waits for), or, unchanged, it was handled by the graph under its policy (its thread
    gives its result again)."""
    if app.review.open_for(world_id, order.order_id):
        return True
    if version is None:
        return False
    desk = app.desk(world_id, order.order_id)
    return app.runner.started(thread_id_for(desk, order.order_id, version))


def _clean_result(thread_id: str, order: Order) -> RunResult:
    return RunResult(
        thread_id=thread_id,
        order_id=order.order_id,
        kinds=[],
        plans={},
        decisions={},
        pending={},
        order_after=order,
    )


def _flush(
    app: Exdesk,
    world_id: str,
    clean: list[_Clean],
    settle: Callable[[int, Outcome], None],
    *,
    actor: str,
    role: str | None,
) -> None:
    """Take the clean orders' submissions and record their decisions, in one transaction."""
    if not clean:
        return

    def work(conn: Connection) -> list[str | None]:
        new = [c for c in clean if c.version is None]
        orders = [c.screened.ctx.order for c in new]
        taken = iter(app.orders.submit_many(conn, world_id, orders, [c.seal for c in new]))
        items: list[tuple[str, str, dict[str, Any]]] = []
        keys: list[str | None] = []
        ids: list[str | None] = []
        policies: set[str] = set()
        for item in clean:
            version = item.version
            if version is None:
                submission = next(taken)
                if not submission.changed:
                    ids.append(None)  # another process took this very order first: theirs
                    continue
                version = submission.version
            sid = screened_thread_id(
                world_id, item.screened.ctx.order.order_id, version, item.policy
            )
            if item.policy.digest not in policies:
                policies.add(item.policy.digest)
                policy_item, policy_key = policy_entry(item.policy)
                items.append(policy_item)
                keys.append(policy_key)
            payload = detected_payload(
                world_id, item.screened.ctx, [], version=version, thread_id=sid
            )
            payload["screened"] = True
            payload["submitted_by"] = actor if role is None else f"{actor} ({role})"
            items.append(("agent", "order.detected", payload))
            keys.append(f"{sid}:detected")
            ids.append(sid)
        app.audit.append_many(items, keys=keys, conn=conn)
        return ids

    try:
        ids = write(app.engine, work)
    except IntegrityError:  # another process inserted one of these orders first: go again
        ids = write(app.engine, work)
    for item, sid in zip(clean, ids, strict=True):
        order = item.screened.ctx.order
        if sid is None:
            version = app.orders.version(world_id, order.order_id)
            sid = screened_thread_id(world_id, order.order_id, version, item.policy)
        result = _clean_result(sid, order)
        decide_beside_quietly(app, world_id, result)
        settle(item.index, result)
    clean.clear()
