"""The screening fast path and batches (``service.batch``, issue 13): a batch decides what one
order at a time decides; a clean order is one audit entry that replay and ``audit prove``
read; an unchanged batch run again writes nothing; an exception's plan that changes stock is
seen by the orders after it in the same batch. SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from agent.replay import replay
from audit.keys import log_verifier
from audit.proof import about_order, build_bundle, verify_bundle
from audit.verify import Trust
from domain.models import Order, World
from evals import peak
from evals.history import generate
from knowledge.embedder import HashEmbedder, Remembered
from knowledge.store import open_memory
from service import usecases
from service.batch import Batches, batched, run_batch
from service.reports import case_report
from service.settings import Settings
from service.wiring import Exdesk
from store.db import in_schema, scratch_schema
from tests.conftest import PG_ENV

WORLD = "peak"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with ExitStack() as stack:
        database = None
        if request.param == "postgresql":
            base = os.environ.get(PG_ENV)
            if not base:
                pytest.skip(f"{PG_ENV} is unset: PostgreSQL variant skipped")
            database = in_schema(base, stack.enter_context(scratch_schema(base, "exdesk_batch")))
        yield Settings(data_dir=tmp_path / "d", database_url=database, embedding_model="hash")


def _app(settings: Settings, world: dict[str, Any] | None = None) -> Exdesk:
    app = Exdesk(settings)
    usecases.load_world(app, WORLD, World.model_validate(world or peak.world()))
    return app


def _orders(count: int, share: float) -> list[Order]:
    return [Order.model_validate(o) for _, o in peak.orders(count, share, seed=5)]


def _summary(result: Any) -> dict[str, Any]:
    report = case_report("x", result)
    return {
        "kinds": report["kinds"],
        "exceptions": report["exceptions"],
        "after": report["order_after"],
    }


def test_a_batch_decides_what_one_order_at_a_time_decides(
    settings: Settings, tmp_path: Path
) -> None:
    orders = _orders(60, 0.2)
    one_by_one = settings.model_copy(update={"data_dir": tmp_path / "alone", "database_url": None})
    alone = _app(one_by_one)
    try:
        expected = [_summary(usecases.handle(alone, WORLD, o)) for o in orders]
    finally:
        alone.close()
    app = _app(settings)
    try:
        batches = Batches(app, WORLD)
        got = [_summary(r) for chunk in batched(orders, 25) for r in batches.run(chunk)]
        assert got == expected
        assert sum(1 for s in got if s["kinds"]) == 12  # the exceptions went through the agent
        entries = list(app.audit.entries())
        detected = Counter(e.payload["order_id"] for e in entries if e.event == "order.detected")
        assert set(detected) == {o.order_id for o in orders} and set(detected.values()) == {1}
        clean = {o.order_id for o, s in zip(orders, got, strict=True) if not s["kinds"]}
        # A clean order is one entry: no submission entry, no gate, no thread of the graph.
        about_clean = [e for e in entries if e.payload.get("order_id") in clean]
        assert {e.event for e in about_clean} == {"order.detected"}
        assert len(about_clean) == len(clean)
        assert all(e.payload["thread_id"].startswith("S-") for e in about_clean)
        assert all(e.payload["screened"] and e.payload["checkers"] for e in about_clean)
        report = replay(entries, app.checkers, app.audit.clear_values)
        assert report.decisions == 60 and report.reproduced == 60, report.as_json()
        one = sorted(clean)[0]
        chosen = about_order(app.audit.entries(), one)
        checkpoint = app.audit.latest_checkpoint(cosigned=False)
        key = app.public_key()
        assert checkpoint is not None and key is not None
        bundle = build_bundle(chosen, app.audit.leaf_hashes(checkpoint.size), checkpoint, one)
        assert [i["entry"]["event"] for i in bundle["entries"]] == ["order.detected"]
        proved = verify_bundle(json.dumps(bundle), Trust(keys=(log_verifier(key),)))
        assert proved.ok, proved.problem
        # The same batch again: nothing new is written, the same results come back.
        size = app.audit.head()[0]
        again = [_summary(r) for chunk in batched(orders, 25) for r in batches.run(chunk)]
        assert again == got and app.audit.head()[0] == size
    finally:
        app.close()


def test_stock_an_exception_took_is_seen_by_the_next_order_of_the_batch(
    settings: Settings,
) -> None:
    """The reallocation of an order with no watch in Shenzhen takes Shanghai's last watches;
    the next order, a clean one from Shanghai a moment before, is now short."""
    orders = _orders(40, 0.0)
    short = next(
        Order.model_validate(o)
        for k, o in peak.orders(200, 0.5, seed=5, kinds=("reallocate",))
        if k
    )
    wanted = short.qty_by_sku()[peak.SCARCE[1]]
    world = peak.world()
    for row in world["inventory"]:
        if row["sku"] == peak.SCARCE[1] and row["warehouse_id"] == "WH-SHA":
            row["on_hand"] = wanted
    raw = copy.deepcopy(short.as_json())
    raw.update(order_id="PK-NEXT", customer={**raw["customer"], "id": "C-NEXT"})
    raw["fulfillment"] = {**raw["fulfillment"], "warehouse_id": "WH-SHA"}
    follower = Order.model_validate(raw)
    app = _app(settings, world)
    try:
        results = run_batch(app, WORLD, [*orders[:5], short, follower, *orders[5:]])
        kinds = [getattr(r, "kinds", None) for r in results]
        assert [k.value for k in kinds[5]] == ["stockout"]
        assert [k.value for k in kinds[6]] == ["stockout"], (
            "the follower was screened on stale stock"
        )
        assert all(k == [] for i, k in enumerate(kinds) if i not in (5, 6))
    finally:
        app.close()


def test_an_order_its_world_cannot_serve_is_an_error_and_stores_nothing(
    settings: Settings,
) -> None:
    orders = _orders(6, 0.0)
    raw = orders[2].as_json()
    raw["fulfillment"]["warehouse_id"] = "WH-NOWHERE"
    orders[2] = Order.model_validate(raw)
    app = _app(settings)
    try:
        results = run_batch(app, WORLD, orders)
        assert "WH-NOWHERE" in str(results[2]) and "not a warehouse" in str(results[2])
        assert all(getattr(r, "kinds", None) == [] for i, r in enumerate(results) if i != 2)
        assert app.orders.current(WORLD, orders[2].order_id) is None
        assert orders[2].order_id not in json.dumps([e.payload for e in app.audit.entries()])
    finally:
        app.close()


def test_a_changed_order_is_decided_again_as_its_next_version(settings: Settings) -> None:
    orders = _orders(5, 0.0)
    app = _app(settings)
    try:
        run_batch(app, WORLD, orders)
        raw = orders[1].as_json()
        raw["notes"] = "leave it with the neighbour"
        changed = Order.model_validate(raw)
        [result] = run_batch(app, WORLD, [changed])
        assert app.orders.version(WORLD, changed.order_id) == 2
        assert getattr(result, "thread_id", "").startswith("S-") and "-v2-" in result.thread_id
        versions = [
            e.payload["order_version"]
            for e in app.audit.entries()
            if e.event == "order.detected" and e.payload["order_id"] == changed.order_id
        ]
        assert versions == [1, 2]
    finally:
        app.close()


class _Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, bool]] = []

    def embed(self, texts: Sequence[str], *, query: bool = False) -> Any:
        self.calls.append((len(texts), query))
        return super().embed(texts, query=query)


def test_a_batch_embeds_its_searches_and_likely_cases_at_once(settings: Settings) -> None:
    """The exceptions of a batch search the case memory, and teach it a case each, with the
    model called once for the searches and once for the cases, not twice an order."""
    base = _Counting()
    memory = open_memory(url=None, embedder=Remembered(base))
    memory.import_cases(generate(40))
    base.calls.clear()
    app = Exdesk(settings, memory=memory)
    try:
        usecases.load_world(app, WORLD, World.model_validate(peak.world()))
        orders = [
            Order.model_validate(o)
            for _, o in peak.orders(30, 0.3, seed=9, kinds=("payment_retry", "attach_invoice"))
        ]
        results = run_batch(app, WORLD, orders)
        handled = [r for r in results if getattr(r, "kinds", None)]
        assert len(handled) == 9
        learned = [e for e in app.audit.entries() if e.event == "cases.learned"]
        assert len(learned) == 9  # each exception taught the memory its case
        assert len(base.calls) == 2, base.calls  # the searches at once, the cases at once
        assert base.calls[0][1] and not base.calls[1][1]
    finally:
        app.close()
        memory.close()


def test_a_clean_new_version_supersedes_what_the_old_one_waits_for(settings: Settings) -> None:
    """An order waiting for approval of an HS code fix comes again, fixed: the new version is
    clean, and the proposal for the old one is superseded (not left open to approve)."""
    [(_, body)] = list(peak.orders(1, 1.0, seed=3, kinds=("fix_hs",)))
    waiting = Order.model_validate(body)
    app = _app(settings)
    try:
        [first] = run_batch(app, WORLD, [waiting])
        assert [k.value for k in getattr(first, "kinds", [])] == ["customs_block"]
        [proposal] = app.review.open_for(WORLD, waiting.order_id)
        fixed = copy.deepcopy(body)
        fixed["lines"][0]["hs_code"] = peak.W.SKU_HS[fixed["lines"][0]["sku"]]
        [second] = run_batch(app, WORLD, [Order.model_validate(fixed)])
        assert getattr(second, "kinds", None) == []
        assert app.orders.version(WORLD, waiting.order_id) == 2
        assert app.review.open_for(WORLD, waiting.order_id) == []
        assert app.review.get(proposal.proposal_id).status.value == "superseded"
    finally:
        app.close()


def test_each_order_is_heard_of_once_its_decision_has_committed(settings: Settings) -> None:
    """``on_decided`` (what a stream worker acks by): every order once, in the batch's order,
    each when its decision is already in the log, before the batch is done."""
    orders = _orders(40, 0.2)
    app = _app(settings)
    heard: list[int] = []
    logged: list[int] = []  # the log's length as each is heard of
    try:

        def decided(index: int, outcome: Any) -> None:
            entries = list(app.audit.entries())
            keys = {e.payload.get("order_id") for e in entries}
            assert orders[index].order_id in keys, f"order {index} heard of before it committed"
            heard.append(index)
            logged.append(len(entries))

        outcomes = run_batch(app, WORLD, orders, on_decided=decided)
        assert heard == list(range(len(orders)))
        assert logged[0] < logged[-1]  # the first heard of while the rest were still to decide
        assert sum(bool(getattr(o, "decisions", None)) for o in outcomes) > 0  # exceptions too
    finally:
        app.close()
