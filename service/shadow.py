"""Shadow decisions: a candidate policy version decides beside the active one on live orders,
and is never executed.

After an order's run (under the version that decides it), ``decide_beside`` derives the
decision again under the shadow candidate from exactly the inputs the run recorded (the order
and facts it read, the past cases it counted, a model's reading of the notes: what
``exdesk audit replay`` derives from), so no tool, model or case memory is called and nothing
is done. What the candidate would have decided is recorded beside what was decided
(``policy.shadow_decided``, once per run and candidate) and compared by
``service.policy_compare``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agent.replay import NotReplayable, Run, clear_for, collect, derive
from agent.runner import RunResult
from domain.errors import ExdeskError
from service.wiring import Exdesk

log = logging.getLogger(__name__)

SHADOW_EVENT = "policy.shadow_decided"
_INPUTS = ("notes", "detected", "retrieved", "ranked", "gate")  # the run's keyed entries


def tops(plans: dict[str, list[dict[str, Any]]] | None) -> dict[str, dict[str, str]]:
    """The top plan (strategy, tier) for each exception kind."""
    return {
        kind: {"strategy": str(ranked[0]["strategy"]), "tier": str(ranked[0]["tier"])}
        for kind, ranked in sorted((plans or {}).items())
        if ranked
    }


def recorded_runs(app: Exdesk, thread_ids: Sequence[str]) -> dict[str, Run]:
    """What the log recorded of each of these runs (their keyed entries, read in one query),
    by thread; a thread the log holds nothing of is absent."""
    found = app.audit.by_keys([f"{t}:{name}" for t in thread_ids for name in _INPUTS])
    _, runs = collect(sorted(found.values(), key=lambda e: e.seq))
    return {run.thread_id: run for run in runs}


def recorded_run(app: Exdesk, thread_id: str) -> Run | None:
    """What the log recorded of one run, or None when it holds none."""
    return recorded_runs(app, [thread_id]).get(thread_id)


def decide_beside(app: Exdesk, world_id: str, result: RunResult) -> bool:
    """Record what the shadow candidate (if one runs) would have decided for the run that
    produced ``result``; whether an entry was written. Costs nothing without a shadow."""
    shadow = app.policies.shadow()
    candidate = app.policies.candidate()
    if shadow is None or candidate is None:
        return False
    thread = result.thread_id
    key = f"{thread}:shadow:{shadow.digest[:12]}"
    if app.audit.by_key(key) is not None:
        return False  # this run was compared already (the same order handled again)
    run = recorded_run(app, thread)
    if run is None:
        return False
    payload: dict[str, Any] = {
        "order_id": run.order_id,
        "world_id": world_id,
        "thread_id": thread,
        "active": run.policy_ref,
        "candidate": shadow.ref,
        "version": candidate[0],
        "decided": {"kinds": sorted(run.detected.get("kinds", [])), "top": tops(run.plans)},
    }
    try:
        derived = derive(run, shadow, app.checkers, clear_for(run, app.audit.clear_values))
    except (NotReplayable, ExdeskError) as exc:
        payload["error"] = str(exc)
    else:
        would = {"kinds": sorted(derived.kinds), "top": tops(derived.plans)}
        payload["would"] = would
        payload["differs"] = would != payload["decided"]
    app.audit.append("agent", SHADOW_EVENT, payload, key=key)
    return True


def decide_beside_quietly(app: Exdesk, world_id: str, result: RunResult) -> None:
    """``decide_beside`` for the live paths: a shadow that fails never fails the order."""
    try:
        decide_beside(app, world_id, result)
    except Exception:  # the live decision stands; the comparison misses one order
        log.exception("the shadow decision of %s was not recorded", result.order_id)
