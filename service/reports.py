"""What a handled order looks like in a report (contract §6): ``exdesk eval``'s cases, the lines
of ``exdesk run --out``, and later the service's answers share this one shape."""

from __future__ import annotations

from typing import Any

from agent.runner import RunResult
from domain.errors import ExdeskError
from domain.models import Order

REPORT_PLAN_FIELDS = (
    "strategy",
    "tier",
    "score",
    "rationale",
    "similar_cases",
    "cost_usd",
    "actions",
    "evidence",
)


def case_report(case_id: str, result: RunResult) -> dict[str, Any]:
    exceptions = []
    for kind in result.kinds:
        plans = [p.model_dump(mode="json") for p in result.plans.get(kind, [])]
        decision = result.decisions.get(kind)
        exceptions.append(
            {
                "kind": kind.value,
                "plans": [{k: p[k] for k in REPORT_PLAN_FIELDS if k in p} for p in plans],
                "decision": decision.as_json() if decision is not None else {},
            }
        )
    return {
        "id": case_id,
        "kinds": [k.value for k in result.kinds],
        "exceptions": exceptions,
        "order_after": result.order_after.as_json(),
    }


def error_report(case_id: str, order: Order, error: ExdeskError) -> dict[str, Any]:
    """A case the agent could not handle: the order as given, and why."""
    return {
        "id": case_id,
        "error": str(error),
        "kinds": [],
        "exceptions": [],
        "order_after": order.as_json(),
    }
