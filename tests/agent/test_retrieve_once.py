"""A run that is done again (its process killed after the retrieval was recorded, before the
step's checkpoint) ranks with the past cases its first try recorded, not with what the case
memory holds by then: the decision is the one the log can replay. Found by the stream fault
test: a worker killed in the middle of an order, the order finished by another worker after
other orders had taught the memory one more case, and replay reported 139 of 140."""

from __future__ import annotations

from pathlib import Path

from agent.replay import replay
from agent.runner import thread_id_for
from domain.models import Order, World
from knowledge.cases import PastCase
from service import usecases
from service.replay import checkers
from service.settings import Settings
from service.wiring import Exdesk
from tests.factories import example


def _past(n: int) -> list[PastCase]:
    return [
        PastCase.model_validate(
            {
                "case_id": f"PC-{i}",
                "kind": "stockout",
                "summary": f"WH-SHA could not ship headphones, case {i}",
                "strategy": "reallocate_warehouse",
                "outcome": {"success": True},
                "resolved_at": "2026-10-01T09:00:00+08:00",
            }
        )
        for i in range(n)
    ]


def test_a_run_done_again_keeps_to_the_retrieval_it_recorded(tmp_path: Path) -> None:
    case = example("EX-inject-stock-012")
    order = Order.model_validate(case["order"])
    app = Exdesk(Settings(data_dir=tmp_path / "desk", embedding_model="hash"))
    try:
        usecases.load_world(app, "default", World.model_validate(case["world"]))
        usecases.submit(app, "default", order)
        desk = app.desk("default", order.order_id)
        thread = thread_id_for(desk, order.order_id, 1)
        # the first try: it found no past case, recorded so, and its process died
        app.audit.append(
            "agent",
            "cases.retrieved",
            {
                "order_id": order.order_id,
                "thread_id": thread,
                "cases": {"stockout": []},
                "evidence": {"stockout": []},
            },
            key=f"{thread}:retrieved",
        )
        app.case_memory.import_cases(_past(6))  # since then, the memory learned six
        result = app.runner.handle(desk, order.order_id)
        assert result.decisions
        ranked = [e for e in app.audit.entries() if e.event == "plans.ranked"]
        assert len(ranked) == 1
        for plans in ranked[0].payload["plans"].values():
            assert all(not plan.get("similar_cases") for plan in plans), plans
        report = replay(app.audit.entries(), checkers(), app.audit.clear_values)
        assert report.mismatches == [] and report.reproduced == report.decisions == 1
    finally:
        app.close()


def test_a_first_run_ranks_with_what_it_retrieves(tmp_path: Path) -> None:
    case = example("EX-inject-stock-012")
    order = Order.model_validate(case["order"])
    app = Exdesk(Settings(data_dir=tmp_path / "desk", embedding_model="hash"))
    try:
        usecases.load_world(app, "default", World.model_validate(case["world"]))
        app.case_memory.import_cases(_past(6))
        usecases.submit(app, "default", order)
        app.runner.handle(app.desk("default", order.order_id), order.order_id)
        ranked = next(e for e in app.audit.entries() if e.event == "plans.ranked")
        cited = {
            c
            for plans in ranked.payload["plans"].values()
            for p in plans
            for c in p.get("similar_cases") or []
        }
        assert cited and cited <= {f"PC-{i}" for i in range(6)}
        report = replay(app.audit.entries(), checkers(), app.audit.clear_values)
        assert report.mismatches == [] and report.reproduced == report.decisions == 1
    finally:
        app.close()
