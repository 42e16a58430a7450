"""Orders from a stream: `exdesk publish` and `exdesk worker` over NATS JetStream on 127.0.0.1,
on SQLite and (when EXDESK_TEST_DATABASE_URL is set) PostgreSQL. Skipped, saying so, when no
NATS answers there."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest

from domain.models import Order, ProposalStatus
from knowledge.store import MemoryBase
from service.settings import Settings
from service.streams import (
    CaseEvent,
    Delivery,
    MalformedEvent,
    OrderEvent,
    event_body,
    parse_event,
)
from service.wiring import Exdesk
from service.worker import Worker
from store.streams import StreamPositions
from tests.factories import example
from tests.service.stream_support import NATS_URL, OnStream, on_stream_for
from tests.service.test_processes import _check_consistent, _crash_scenario, _write_jsonl


@pytest.fixture(params=["sqlite", "postgresql"])
def on_stream(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnStream]:
    yield from on_stream_for(request.param, tmp_path)


def _decided(app: Exdesk) -> Counter[str]:
    return Counter(
        e.payload["order_id"] for e in app.audit.entries() if e.event == "order.detected"
    )


def test_two_workers_share_the_stream_each_order_once(on_stream: OnStream, tmp_path: Path) -> None:
    world, orders, template_of = _crash_scenario(tmp_path, per_template=4)  # 28 orders
    code, output = on_stream.publish(str(orders), "--world", str(world))
    assert code == 0 and "28 events published" in output, output
    # the second names a cluster's servers, the first of them down: it connects to the next
    cluster = f"nats://127.0.0.1:1,{on_stream.url}"
    workers = [
        on_stream.worker("--until-idle", "4", "--batch", "5"),
        on_stream.install.run("worker", "--stream", cluster, "--until-idle", "4", "--batch", "5"),
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    handled = [int(o.split(" orders handled")[0].split()[-1]) for o in outputs]
    assert sum(handled) == 28 and all(handled), outputs  # both took part, none twice
    app = on_stream.install.app()
    try:
        _check_consistent(app)
        assert set(_decided(app)) == set(template_of) and set(_decided(app).values()) == {1}
    finally:
        app.close()
    code, output = on_stream.publish(str(orders))  # the same file again, at once
    assert code == 0 and "0 events published" in output and "28 already there" in output
    code, output = on_stream.install.call("audit", "verify")
    assert code == 0 and output.startswith("ok: "), output


def test_a_bad_line_publishes_nothing(on_stream: OnStream, tmp_path: Path) -> None:
    good = example("EX-clean-001")["order"]
    bad = json.loads(json.dumps(good))
    bad["order_id"] = "EX-bad"
    bad["lines"][0]["qty"] = 0
    path = _write_jsonl(tmp_path / "orders.jsonl", [good, bad])
    code, output = on_stream.publish(str(path))
    assert code == 1, output
    assert f"{path} line 2: lines.0.qty" in output and "nothing was published" in output
    assert "Traceback" not in output
    code, output = on_stream.install.call("worker", "--stream", NATS_URL, "--until-idle", "1")
    assert code == 0 and "0 orders handled" in output, output


def _raw_publish(subject: str, bodies: list[bytes]) -> None:
    async def send() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for body in bodies:
            await js.publish(subject, body)
        await nc.close()

    asyncio.run(send())


def test_poison_events_go_to_dead_letters_with_the_reason(on_stream: OnStream) -> None:
    """Garbage at once; an order of a world never loaded after its attempts (2 here); a good
    order beside them is handled."""
    case = example("EX-clean-001")
    orphan = OrderEvent(world_id="nowhere", order=Order.model_validate(case["order"]))
    fine = CaseEvent.model_validate(case)
    subject = f"test.{on_stream.name.lower()}.0"
    on_stream.worker("--until-idle", "0.5").communicate(timeout=120)  # makes the streams
    _raw_publish(
        subject, [b"{not json", event_body(orphan), b'{"world_id": "w"}', event_body(fine)]
    )
    proc = on_stream.worker("--until-idle", "6")
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "1 orders handled" in output and "3 dead-lettered" in output, output
    code, listing = on_stream.install.call("dead-letters", "--stream", NATS_URL)
    assert code == 0 and "3 dead letter(s)" in listing, listing
    assert "malformed event: not valid JSON" in listing
    assert "malformed event: order: Field required" in listing
    assert "order EX-0001:" in listing and "nowhere" in listing


def test_sigterm_finishes_the_order_in_hand_and_hands_back_the_rest(
    on_stream: OnStream, tmp_path: Path
) -> None:
    world, orders, template_of = _crash_scenario(tmp_path, per_template=6)  # 42 orders
    assert on_stream.publish(str(orders), "--world", str(world))[0] == 0
    first = on_stream.worker("--batch", "40")
    deadline = time.monotonic() + 120
    app = on_stream.install.app()
    try:
        while not _decided(app) and time.monotonic() < deadline:
            time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        output = first.communicate(timeout=120)[0]
        assert first.returncode == 0 and "; stopped" in output, output
        done = int(output.split(" orders handled")[0].split()[-1])
        assert 0 < done < len(template_of), output
        # the rest was handed back at once: another worker finishes without waiting ack_wait
        second = on_stream.worker("--until-idle", "2")
        rest = second.communicate(timeout=300)[0]
        assert second.returncode == 0, rest
        assert f"{len(template_of) - done} orders handled" in rest, (output, rest)
        _check_consistent(app)
        assert set(_decided(app).values()) == {1} and set(_decided(app)) == set(template_of)
    finally:
        app.close()


def test_an_older_event_never_follows_a_newer_one(tmp_path: Path) -> None:
    """Events of one order delivered out of order: the older is acked as superseded, and the
    order stays as the newer one left it; two events of one order in one batch: only the
    newest is decided."""
    app = Exdesk(Settings(data_dir=tmp_path / "desk", embedding_model="hash"))
    try:
        case, old, newer = _two_versions()
        stream = _ListStream()
        worker = Worker(app, stream, batch=10, max_attempts=1, say=print)  # type: ignore[arg-type]
        stop = threading.Event()
        worker._handle_batch([_delivery(newer, 20)], stop)
        worker._handle_batch([_delivery(old, 10)], stop)  # came late: superseded
        worker._handle_batch([_delivery(newer, 20)], stop)  # redelivered: replays
        worker._handle_batch([_delivery(old, 30), _delivery(newer, 31)], stop)  # one batch
        assert stream.acked == [20, 10, 20, 30, 31] and stream.retried == []
        assert (worker.tally.handled, worker.tally.superseded) == (3, 2)
        case_id = CaseEvent.model_validate(case).id
        assert app.orders.current(case_id, "EX-0001").lines[0].qty == 2  # type: ignore[union-attr]
        assert app.orders.version(case_id, "EX-0001") == 1
        assert StreamPositions(app.engine, "none").position(case_id, "EX-0001") == 31
        assert set(_decided(app).values()) == {1}
    finally:
        app.close()


def test_an_older_event_claimed_first_is_not_decided_after_a_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers: the first claims an order's older event, and before it decides it the
    second claims and decides the newer one. The first then neither submits the older
    content again nor decides it: it acks it as superseded, and the order stays as the newer
    one left it."""
    import service.worker as worker_module

    app = Exdesk(Settings(data_dir=tmp_path / "desk", embedding_model="hash"))
    try:
        case, old, newer = _two_versions()
        first_stream, second_stream = _ListStream(), _ListStream()
        first = Worker(app, first_stream, batch=10, max_attempts=1, say=print)  # type: ignore[arg-type]
        second = Worker(app, second_stream, batch=10, max_attempts=1, say=print)  # type: ignore[arg-type]
        stop = threading.Event()
        real_run_batch = worker_module.run_batch
        cut_in: list[bool] = []

        def second_cuts_in(*args: object, **kwargs: object) -> object:
            if not cut_in:  # the first worker has claimed; the newer event comes through
                cut_in.append(True)
                second._handle_batch([_delivery(newer, 20)], stop)
            return real_run_batch(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(worker_module, "run_batch", second_cuts_in)
        first._handle_batch([_delivery(old, 10)], stop)
        assert cut_in and second_stream.acked == [20] and second.tally.handled == 1
        assert first_stream.acked == [10] and first_stream.retried == []
        assert (first.tally.handled, first.tally.superseded) == (0, 1)
        case_id = CaseEvent.model_validate(case).id
        assert app.orders.current(case_id, "EX-0001").lines[0].qty == 2  # type: ignore[union-attr]
        assert app.orders.version(case_id, "EX-0001") == 2  # the older's claim, then the newer
        versions = [
            e.payload["order_version"] for e in app.audit.entries() if e.event == "order.detected"
        ]
        assert versions == [2]  # only the newer one was decided
    finally:
        app.close()


def test_warm_up_loads_the_embedding_model_before_the_first_order(tmp_path: Path) -> None:
    """What ``exdesk worker`` does before it takes events: the first batch of a worker
    started at a peak does not wait seconds for the model."""
    from knowledge.models import _Lazy

    app = Exdesk(Settings(data_dir=tmp_path / "desk"))  # the shipped embedding model
    try:
        memory = app.case_memory
        assert isinstance(memory, MemoryBase)
        model: object = memory.embedder
        while not isinstance(model, _Lazy):
            model = model.base  # type: ignore[attr-defined]  # Remembered, Centered
        assert not model.loaded
        app.warm_up()
        assert model.loaded
    finally:
        app.close()


def _two_versions() -> tuple[dict[str, Any], bytes, bytes]:
    """An eval case, and the events of its order's two versions (the newer with qty 2)."""
    case = example("EX-clean-001")
    newer_order = json.loads(json.dumps(case["order"]))
    newer_order["lines"][0]["qty"] = 2
    return case, json.dumps(case).encode(), json.dumps({**case, "order": newer_order}).encode()


class _ListStream:
    """What a worker calls on a stream, kept in lists."""

    name = "none"

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.retried: list[int] = []

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery.seq)

    def retry(self, delivery: Delivery, delay: float) -> None:
        self.retried.append(delivery.seq)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        raise AssertionError(f"dead letter: {reason}")


def _delivery(data: bytes, seq: int) -> Delivery:
    return Delivery(data=data, seq=seq, attempt=1, published_at=datetime.now(UTC), handle=None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff", "not UTF-8"),
        (b"[1]", "not a JSON object"),
        (b'{"world_id": "w", "order": {"order_id": "A"}}', "order.channel: Field required"),
        (b'{"world_id": "", "order": {}}', "world_id: String should have at least 1 character"),
    ],
)
def test_malformed_events_name_the_field(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        parse_event(data)


def test_a_paused_plan_is_approved_through_the_service_and_resumed_once(
    on_stream: OnStream, tmp_path: Path
) -> None:
    """A worker drafts an L2 plan; the service approves it and dies before the plan ran; an
    idle worker resumes it; approving it again afterwards runs nothing more."""
    case = example("EX-customs-bad_hs-005")
    cases = _write_jsonl(tmp_path / "cases.jsonl", [case])
    assert on_stream.publish(str(cases), "--cases")[0] == 0
    out = on_stream.worker("--until-idle", "1").communicate(timeout=300)[0]
    assert "1 orders handled (1 with exceptions)" in out, out
    app = on_stream.install.app()
    try:
        (proposal,) = app.review.find()
    finally:
        app.close()
    pid = proposal.proposal_id
    first_op = "{tool}.{op}".format(**proposal.plan.actions[0].model_dump())
    assert on_stream.install.call("review", "approve", pid, "--by", "alice")[0] == 0
    crash = {"EXDESK_SIMULATED_FAULTS": f"{first_op}=crash-after"}
    code, output = on_stream.install.call("review", "approve", pid, "--by", "bob", extra=crash)
    assert code == -signal.SIGKILL, output
    out = on_stream.worker("--until-idle", "7").communicate(timeout=300)[0]
    assert f"{pid}: resumed (executed)" in out, out
    code, output = on_stream.install.call("review", "approve", pid, "--by", "bob")
    assert code == 0 and f"{pid}: executed" in output, output
    app = on_stream.install.app()
    try:
        _check_consistent(app)
        assert app.review.get(pid).status is ProposalStatus.EXECUTED
        calls = [e.payload["key"] for e in app.audit.entries() if e.event == "tool.called"]
        assert len(calls) == len(set(calls))
    finally:
        app.close()
