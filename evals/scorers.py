"""Scorers for `exdesk eval`: how the report compares with what the cases expect."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any


def partial_match(expected: Any, actual: Any) -> bool:
    """True when every field of ``expected`` is in ``actual`` with the same value."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and partial_match(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(partial_match(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        try:
            return Decimal(str(expected)) == Decimal(str(actual))
        except InvalidOperation:
            return False
    return bool(expected == actual)


def _ratio(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def score(
    report_cases: Sequence[dict[str, Any]], expects: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Detection exact match, top strategy, tier and order_after, over cases with ``expect``.

    Top strategy and tier are counted per expected (case, kind); a kind the agent did not
    raise counts as a miss for both. ``misses`` lists what went wrong, case by case.
    """
    det = [0, 0]
    top = [0, 0]
    tier = [0, 0]
    after = [0, 0]
    misses: list[str] = []
    for case in report_cases:
        expect = expects.get(case["id"])
        if expect is None:
            continue
        top_plans = {e["kind"]: (e["plans"][0] if e["plans"] else None) for e in case["exceptions"]}
        if "kinds" in expect:
            det[1] += 1
            if sorted(case["kinds"]) == sorted(expect["kinds"]):
                det[0] += 1
            else:
                misses.append(
                    f"{case['id']}: kinds {sorted(case['kinds'])} "
                    f"≠ expected {sorted(expect['kinds'])}"
                )
        for kind, allowed in (expect.get("top") or {}).items():
            top[1] += 1
            tier[1] += 1
            plan = top_plans.get(kind)
            if plan is None or plan["strategy"] not in allowed:
                got = plan["strategy"] if plan else "nothing"
                misses.append(f"{case['id']}: {kind} top {got} ∉ {sorted(allowed)}")
                continue
            top[0] += 1
            if plan["tier"] == allowed[plan["strategy"]]:
                tier[0] += 1
            else:
                misses.append(
                    f"{case['id']}: {kind} {plan['strategy']} tier {plan['tier']} "
                    f"≠ {allowed[plan['strategy']]}"
                )
        if "order_after" in expect:
            after[1] += 1
            if partial_match(expect["order_after"], case["order_after"]):
                after[0] += 1
            else:
                misses.append(f"{case['id']}: order_after does not match {expect['order_after']}")
    return {
        "cases_with_expect": det[1],
        "detection_exact_match": _ratio(*det),
        "top_strategy": _ratio(*top),
        "tier": _ratio(*tier),
        "order_after": _ratio(*after),
        "misses": misses,
    }
