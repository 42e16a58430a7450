"""The stream worker: takes order events off the stream, handles them, acks them.

Any number of workers, in any number of processes and machines, share one stream and one
database. What keeps the work right:

- **Ack after commit.** An event is acked only after its order's decisions and their audit
  entries have committed. A worker killed before that leaves the event to the stream, which
  hands it to another worker; handling an order again replays what was done (every step is
  checkpointed, every action and audit entry keyed), so nothing runs twice and nothing is lost.
- **Per-order order.** A batch's events are claimed and their orders submitted in one
  transaction, each only if no newer event of the order (a higher stream position) was
  claimed before it (``store.streams``; the claimed rows stay locked until the submissions
  commit); an older one arriving late is acked as superseded. An order whose stored content
  moved on after its claim (a newer event was submitted meanwhile) is not decided again
  (``service.batch``'s ``submitted``). So an order's later version is never followed by an
  earlier one, and the run always takes the order as last submitted.
- **Bad events.** One that is not an event at all goes to the dead-letter subject at once (its
  bytes will never change); one the desk cannot take (a world not loaded, a currency with no
  rate) is tried again with backoff and dead-lettered, with the reason, after
  ``max_attempts`` deliveries. A failure of the database or another outside system is no fault
  of the event: it is handed back with a delay and never dead-lettered.
- **Back-pressure.** A worker fetches its next batch only when it has finished the last, so a
  slow database slows consumption; the stream keeps the rest.
- **Batches.** A fetched batch is decided as ``exdesk run`` decides a file's batch
  (``service.batch``): its clean orders together in one transaction, only the ones with a
  finding through the graph; each event is acked when its order's decision has committed.
  Of several events of one order in a batch only the newest is taken (the others are acked
  as superseded).
- **Stopping.** ``stop`` (SIGTERM, Ctrl-C) lets the order in hand be decided, hands the
  rest of the batch back at once, and returns.
- **Approved plans.** When idle, a worker resumes proposals left ``approved`` (a vote whose
  process died before the plan ran), once: the order's lock and checkpoints see to that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from agent.runner import RunResult
from domain.digest import digest
from domain.errors import ExdeskError, InputError
from domain.models import ProposalStatus
from service import usecases
from service.batch import Outcome, Superseded, run_batch
from service.render import safe
from service.streams import CaseEvent, Delivery, Event, MalformedEvent, Stream, parse_event
from service.wiring import Exdesk
from store.db import write
from store.orders import Submission
from store.streams import StreamPositions

SWEEP_EVERY_S = 5.0
MAX_BACKOFF_S = 30.0


@dataclass
class Tally:
    handled: int = 0  # events whose order was decided (or replayed) and acked
    exceptions: int = 0  # of them, orders with at least one exception decided
    superseded: int = 0  # older events of an order acked without a run
    retried: int = 0  # handed back to be tried again
    dead: int = 0  # sent to the dead-letter subject
    resumed: int = 0  # approved proposals resumed
    # publish to ack of the latest handled events, in ms
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))


class _Outage(Exception):
    """Not the event's fault: hand the batch back and wait."""


class Worker:
    def __init__(
        self,
        app: Exdesk,
        stream: Stream,
        *,
        batch: int,
        max_attempts: int,
        say: Callable[[str], None],
    ) -> None:
        self.app = app
        self.stream = stream
        self.batch = batch
        self.max_attempts = max_attempts
        self.say = say
        self.positions = StreamPositions(app.engine, stream.name)
        self.tally = Tally()
        self._pause = 0.5
        self._last_sweep = 0.0
        self._acked: set[int] = set()  # stream positions of the batch in hand settled already

    def run(self, stop: threading.Event, *, until_idle_s: float | None = None) -> Tally:
        """Work until ``stop`` is set (or nothing came for ``until_idle_s``)."""
        idle_since = time.monotonic()
        while not stop.is_set():
            try:
                deliveries = self.stream.fetch(self.batch, timeout=1.0)
            except ExdeskError as exc:  # the stream is away: it comes back, we wait
                self.say(f"stream: {safe(exc)}; trying again")
                stop.wait(2.0)
                continue
            if deliveries:
                self._handle_batch(deliveries, stop)
                idle_since = time.monotonic()
                continue
            self._sweep_approved()
            if until_idle_s is not None and time.monotonic() - idle_since >= until_idle_s:
                break
        return self.tally

    # --- one batch -----------------------------------------------------------------------

    def _handle_batch(self, deliveries: list[Delivery], stop: threading.Event) -> None:
        try:
            self._decide_batch(deliveries, stop)
            self._pause = 0.5
        except _Outage as exc:
            left = [d for d in deliveries if d.seq not in self._acked]
            self.say(
                f"{safe(exc)}; {len(left)} event(s) handed back, "
                f"trying again in {self._pause:.1f} s"
            )
            self._hand_back(left, self._pause)
            stop.wait(self._pause)
            self._pause = min(self._pause * 2, MAX_BACKOFF_S)
        finally:
            self._acked.clear()

    def _hand_back(self, deliveries: list[Delivery], delay: float) -> None:
        """Give events back to the stream, settled for this batch: never handed back twice."""
        for delivery in deliveries:
            self.stream.retry(delivery, delay)
            self.tally.retried += 1
            self._acked.add(delivery.seq)

    def _ack(self, delivery: Delivery) -> None:
        self.stream.ack(delivery)
        self._acked.add(delivery.seq)

    def _decide_batch(self, deliveries: list[Delivery], stop: threading.Event) -> None:
        """Take the batch's events (each order's newest), claim and submit them together,
        then decide them together through ``service.batch`` as ``exdesk run`` does, and ack
        each after its decision commits."""
        events: list[tuple[Delivery, Event]] = []
        for delivery in deliveries:
            try:
                events.append((delivery, parse_event(delivery.data)))
            except MalformedEvent as exc:
                self._dead(delivery, f"malformed event: {exc}")
        newest = {(e.world_id, e.order.order_id): d.seq for d, e in events}
        by_world: dict[str, list[tuple[Delivery, Event]]] = {}
        for index, (delivery, event) in enumerate(events):
            if stop.is_set():
                self._hand_back([d for d, _ in events[index:]], 0.0)
                break
            if newest[(event.world_id, event.order.order_id)] != delivery.seq:
                self._superseded(delivery)  # a later event of the order is in this batch
                continue
            try:
                if isinstance(event, CaseEvent):
                    self._load_world(event)
            except InputError as exc:  # the desk cannot take it as it stands
                self._refused(delivery, event, exc)
                continue
            except Exception as exc:  # the database, a lock held too long: not the event
                raise _Outage(f"order {event.order.order_id}: {type(exc).__name__}: {exc}") from exc
            by_world.setdefault(event.world_id, []).append((delivery, event))
        for world_id, given in by_world.items():
            if stop.is_set():  # stopped while an earlier world's orders were decided
                self._hand_back([d for d, _ in given], 0.0)
                continue
            try:
                items = self._servable(world_id, given)
                taken = self._claim(world_id, items) if items else {}
            except Exception as exc:  # the database, a lock held too long: not the events
                raise _Outage(f"world {world_id}: {type(exc).__name__}: {exc}") from exc
            for delivery, event in items:
                if event.order.order_id not in taken:
                    self._superseded(delivery)  # a newer event of the order came first
            claimed = [(d, e) for d, e in items if e.order.order_id in taken]
            self._decide_world(world_id, claimed, taken, stop)

    def _servable(
        self, world_id: str, items: list[tuple[Delivery, Event]]
    ) -> list[tuple[Delivery, Event]]:
        """The events whose orders the world can serve; the others are refused (tried again
        later, then dead-lettered with the reason)."""
        try:
            problems = usecases.servable(self.app, world_id, [e.order for _, e in items])
        except InputError as exc:  # the world itself is not there
            problems = [exc] * len(items)
        out = []
        for (delivery, event), problem in zip(items, problems, strict=True):
            if problem is None:
                out.append((delivery, event))
            else:
                self._refused(delivery, event, problem)
        return out

    def _claim(self, world_id: str, items: list[tuple[Delivery, Event]]) -> dict[str, Submission]:
        """Claim the events' positions and submit the orders they let through, in one
        transaction (``StreamPositions.claim_in``): each taken order's submission, by order
        id. An order whose newer event was claimed first is left out."""
        app = self.app
        wanted = {e.order.order_id: d.seq for d, e in items}

        def work(conn: Connection) -> dict[str, Submission]:
            passed = self.positions.claim_in(conn, world_id, wanted)
            orders = [e.order for _, e in items if e.order.order_id in passed]
            taken = usecases.submit_many(conn, app, world_id, orders)
            return {o.order_id: t for o, t in zip(orders, taken, strict=True)}

        try:
            return write(app.engine, work)
        except IntegrityError:  # another worker claimed one of these orders first: go again
            return write(app.engine, work)

    def _decide_world(
        self,
        world_id: str,
        items: list[tuple[Delivery, Event]],
        taken: dict[str, Submission],
        stop: threading.Event,
    ) -> None:
        """Decide one world's claimed events of the batch, acking each order as soon as its
        decision has committed (the batch goes on); from the first order a tool or a lock
        stopped, nothing more is acked and the rest is handed back. Stopped (SIGTERM), the
        orders not yet taken are handed back at once."""
        away: list[str] = []

        def decided(index: int, outcome: Outcome) -> None:
            delivery, event = items[index]
            if away:
                return
            if isinstance(outcome, Superseded):
                self._superseded(delivery)
            elif isinstance(outcome, InputError):  # the desk cannot take it as it stands
                self._refused(delivery, event, outcome)
            elif isinstance(outcome, ExdeskError):
                away.append(f"order {event.order.order_id}: {outcome}")
            else:
                self._settle(delivery, outcome)

        orders = [e.order for _, e in items]
        try:
            run_batch(self.app, world_id, orders, on_decided=decided, submitted=taken, stop=stop)
        except Exception as exc:  # the database, a tool: not the events'
            raise _Outage(f"world {world_id}: {type(exc).__name__}: {exc}") from exc
        if away:
            raise _Outage(away[0])
        left = [d for d, _ in items if d.seq not in self._acked]
        if left:  # stopped before these were taken
            self._hand_back(left, 0.0)

    def _settle(self, delivery: Delivery, outcome: RunResult) -> None:
        self.tally.handled += 1
        self.tally.exceptions += bool(outcome.decisions)
        self._ack(delivery)
        self.tally.latencies_ms.append(_ms_since(delivery))

    def _superseded(self, delivery: Delivery) -> None:
        self.tally.superseded += 1
        self._ack(delivery)

    def _refused(self, delivery: Delivery, event: Event, exc: ExdeskError) -> None:
        """An event the desk cannot take as it stands: tried again with backoff, then
        dead-lettered with the reason."""
        if delivery.attempt >= self.max_attempts:
            self._dead(delivery, f"order {event.order.order_id}: {exc}")
        else:
            delay = min(2.0 ** (delivery.attempt - 1), MAX_BACKOFF_S)
            self.stream.retry(delivery, delay)
            self.tally.retried += 1
        self._acked.add(delivery.seq)  # settled for this batch: never handed back with it

    def _load_world(self, event: CaseEvent) -> None:
        """An eval case's world, loaded under the case's id the first time it is seen (the
        same world again, redelivered or published twice, is not loaded again)."""
        world_json = event.world.model_dump(mode="json")
        key = f"world:{event.id}:{digest(world_json)[:32]}"
        if self.app.audit.by_key(key) is not None:
            return
        self.app.worlds.load(event.id, event.world)
        self.app.audit.append(
            "operator",
            "world.loaded",
            {
                "world_id": event.id,
                "now": event.world.now.isoformat(),
                "warehouses": len(event.world.warehouses),
                "stock_rows": len(event.world.inventory),
                "events": len(event.world.events),
                "from": "stream",
            },
            key=key,
        )

    def _dead(self, delivery: Delivery, reason: str) -> None:
        self.stream.dead_letter(delivery, reason)
        self._acked.add(delivery.seq)
        self.tally.dead += 1
        self.say(f"dead letter (stream position {delivery.seq}): {safe(reason)}")

    # --- approved proposals --------------------------------------------------------------

    def _sweep_approved(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < SWEEP_EVERY_S:
            return
        self._last_sweep = now
        try:
            approved = self.app.review.find(status=ProposalStatus.APPROVED)
        except Exception as exc:
            self.say(f"cannot look for approved proposals: {type(exc).__name__}: {safe(exc)}")
            return
        for proposal in approved:
            try:
                result = usecases.resume(self.app, proposal)
            except Exception as exc:
                self.say(f"{proposal.proposal_id}: not resumed ({type(exc).__name__}: {safe(exc)})")
                continue
            self.tally.resumed += 1
            done = ", ".join(f"{d.status.value}" for d in result.decisions.values())
            self.say(f"{proposal.proposal_id}: resumed ({done or 'nothing left to run'})")


def _ms_since(delivery: Delivery) -> float:
    return (time.time() - delivery.published_at.timestamp()) * 1000.0
