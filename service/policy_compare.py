"""How a candidate policy version fares beside the active one, from the audit log: the live
decisions each version made (a rollout's share, or while it was active) and, for a shadow,
what the candidate would have decided beside each live decision (``service.shadow``), with
the orders where they differ.

``GET /policies/{v}/compare`` and ``exdesk policy compare V`` show it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from service.shadow import SHADOW_EVENT, tops
from service.wiring import Exdesk
from store.policies import PolicyVersion

DEFAULT_DAYS = 30
MAX_DAYS = 3650
LIST_LIMIT = 200


def _outcomes() -> dict[str, Any]:
    return {"decisions": 0, "exceptions": 0, "strategies": Counter(), "tiers": Counter()}


def _count(into: dict[str, Any], top: dict[str, dict[str, str]]) -> None:
    for chosen in top.values():
        into["exceptions"] += 1
        into["strategies"][chosen["strategy"]] += 1
        into["tiers"][chosen["tier"]] += 1


def _plain(outcome: dict[str, Any]) -> dict[str, Any]:
    return {
        **outcome,
        "strategies": dict(sorted(outcome["strategies"].items())),
        "tiers": dict(sorted(outcome["tiers"].items())),
    }


def compare(app: Exdesk, version: PolicyVersion, *, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """Outcomes per version over the last ``days`` days: ``version`` beside the active one."""
    days = min(max(days, 1), MAX_DAYS)
    since = datetime.now(UTC) - timedelta(days=days)
    active = app.policy_store.get(app.policies.state.active)
    refs = {version.ref: version, active.ref: active}
    live = {ref: _outcomes() for ref in refs}
    shadow: dict[str, Any] = {
        "decided": _outcomes(),
        "would": _outcomes(),
        "differences": 0,
        "not_compared": 0,
    }
    differing: list[dict[str, Any]] = []
    for entry in app.audit.entries():
        if datetime.fromisoformat(entry.at) < since:
            continue
        payload = entry.payload
        ref = payload.get("policy")
        if entry.event == "order.detected" and ref in live:
            live[ref]["decisions"] += 1
        elif entry.event == "plans.ranked" and ref in live:
            _count(live[ref], tops(payload.get("plans")))
        elif entry.event == SHADOW_EVENT and payload.get("candidate") == version.ref:
            if "would" not in payload:
                shadow["not_compared"] += 1
                continue
            decided, would = payload["decided"], payload["would"]
            for side, seen in (("decided", decided), ("would", would)):
                shadow[side]["decisions"] += 1
                _count(shadow[side], seen["top"])
            if payload.get("differs"):
                shadow["differences"] += 1
                if len(differing) < LIST_LIMIT:
                    differing.append(
                        {
                            "order_id": payload.get("order_id"),
                            "thread_id": payload.get("thread_id"),
                            "seq": entry.seq,
                            "decided": decided,
                            "would": would,
                        }
                    )
    return {
        "version": version.id,
        "ref": version.ref,
        "active": {"version": active.id, "ref": active.ref},
        "days": days,
        "since": since.isoformat(),
        "live": {ref: {"version": v.id, **_plain(live[ref])} for ref, v in refs.items()},
        "shadow": {
            "decisions": shadow["decided"]["decisions"],
            "differences": shadow["differences"],
            "not_compared": shadow["not_compared"],
            "decided": _plain(shadow["decided"]),
            "would": _plain(shadow["would"]),
            "orders": differing,
        },
    }
