"""What a handled order looks like in a report (contract §6): ``exdesk eval``'s cases, the lines
of ``exdesk run --out``, and later the service's answers share this one shape."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

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


class ReportFile:
    """``exdesk run --out``: each order's report, a JSON line, written as it comes to a file
    beside the target that takes the target's place when the run ends (a reader never sees
    half a report; a run that fails leaves the earlier report). A path that is not a file
    (``/dev/null``, a pipe) is written as it goes. No path: writes nothing."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._tmp: Path | None = None
        self._fp: IO[str] | None = None

    def __enter__(self) -> ReportFile:
        if self._path is None:
            return self
        if self._path.exists() and not self._path.is_file():
            self._fp = self._path.open("w", encoding="utf-8")
            return self
        self._tmp = self._path.with_name(f".{self._path.name}.tmp")
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._fp = self._tmp.open("w", encoding="utf-8")
        return self

    def write(self, report: dict[str, Any]) -> None:
        if self._fp is not None:
            self._fp.write(json.dumps(report, ensure_ascii=False) + "\n")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fp is None:
            return
        self._fp.close()
        if self._tmp is None or self._path is None:
            return
        if kind is None:
            self._tmp.replace(self._path)
        else:
            self._tmp.unlink(missing_ok=True)
