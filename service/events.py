"""Events out: the audit entries other systems hear of, as CloudEvents 1.0 (``docs/events.md``).

:class:`OutboxWriter` is the audit log's append hook (``audit.log.AppendHook``, injected by
``service.wiring``): for each entry just appended that maps to events it adds outbox rows
with the same connection, so an event and the entry it describes commit together or not at
all. The relay (``service.relay``) publishes the rows after.

An event's id is derived from the log's origin, the entry's sequence number and the event's
type, so it is the same however often it is published: consumers de-duplicate by it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from audit.log import AuditEntry
from store.events import NewEvent, Outbox, about, approvers, current_holds

EVENT_TYPES = (
    "exception.detected",
    "plan.proposed",
    "plan.approved",
    "plan.rejected",
    "plan.expired",
    "plan.executed",
    "plan.failed",
    "action.executed",
    "action.failed",
    "order.released",
)
SPECVERSION = "1.0"
_NAMESPACE = uuid.UUID("6f1c2a4e-8d3b-5e7a-9c0f-3b2d1e4a5c6b")  # exdesk's event ids

# The audit events that can map to events out: any other entry costs the hook nothing.
_MAPPED = frozenset(
    {
        "order.detected",
        "proposal.created",
        "proposal.approved",
        "proposal.rejected",
        "proposal.expired",
        "plan.finished",
        "tool.called",
        "tool.failed",
    }
)

PolicyOf = Callable[[str | None, str], str | None]
"""The policy version in force for (world id, order id), for entries that do not name one."""


def event_id(origin: str, seq: int, type: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{origin}#{seq}#{type}"))


def _order_id(payload: dict[str, Any]) -> str | None:
    found = payload.get("order_id")
    if found is None and isinstance(payload.get("args"), dict):
        found = payload["args"].get("order_id")
    return found if isinstance(found, str) and found else None


def _person(actor: str) -> str:
    return actor.removeprefix("person:")


def _action(payload: dict[str, Any]) -> dict[str, Any]:
    key = str(payload.get("key", ""))
    data = {
        "tool": payload.get("tool"),
        "op": payload.get("op"),
        "args": payload.get("args", {}),
        "idempotency_key": key,
        "plan_key": key.split(":", 1)[0] if ":" in key else None,
    }
    for name in ("compensates", "approved_by", "resolved_by", "released_on"):
        if name in payload:
            data[name] = payload[name]
    return data


def _typed(
    conn: Connection, entry: AuditEntry, world_id: str | None, order_id: str, proposal: Any
) -> list[tuple[str, dict[str, Any]]]:
    """(type, type-specific data) of the events ``entry`` stands for."""
    p, event = entry.payload, entry.event
    if event == "order.detected":
        if not p.get("kinds"):
            return []
        findings = [
            {"kind": f.get("kind"), "summary": f.get("summary")} for f in p.get("findings", [])
        ]
        return [
            (
                "exception.detected",
                {"kinds": p["kinds"], "findings": findings, "thread_id": p.get("thread_id")},
            )
        ]
    pid = p.get("proposal_id")
    plan = {"proposal_id": pid, **(proposal or {})}
    if event == "proposal.created":
        drafted = ("kind", "strategy", "tier", "plan_digest")
        return [("plan.proposed", {"proposal_id": pid, **{k: p.get(k) for k in drafted}})]
    if event == "proposal.approved" and p.get("status_after") == "approved":
        digest = (proposal or {}).get("plan_digest") or p.get("plan_digest")
        by = approvers(conn, str(pid), str(digest)) if pid and digest else [_person(entry.actor)]
        return [("plan.approved", {**plan, "approved_by": by})]
    if event == "proposal.rejected" and p.get("status_after") == "rejected":
        who = _person(entry.actor)
        return [("plan.rejected", {**plan, "rejected_by": who, "reason": p.get("reason")})]
    if event == "proposal.expired":
        return [("plan.expired", {**plan, "detail": p.get("detail")})]
    if event == "plan.finished":
        finished = ("kind", "strategy", "tier", "plan_key", "detail", "approved_by")
        data = {k: p[k] for k in finished if k in p}
        return [("plan.executed" if p.get("ok") else "plan.failed", data)]
    if event == "tool.failed":
        return [("action.failed", {**_action(p), "error": p.get("error")})]
    if event == "tool.called":
        return [("action.executed", _action(p)), *_released(conn, p, world_id, order_id)]
    return []


def _released(
    conn: Connection, p: dict[str, Any], world_id: str | None, order_id: str
) -> list[tuple[str, dict[str, Any]]]:
    """``order.released`` when a tool call lifted a hold: what was lifted, what is left."""
    result = p.get("result")
    if (p.get("tool"), p.get("op")) != ("orders", "release_hold") or not isinstance(result, dict):
        return []
    released = [h for h in result.get("released") or () if isinstance(h, dict)]
    if not released:
        return []
    now = current_holds(conn, world_id, order_id) if world_id else None
    holds, status = now if now is not None else (None, None)
    return [
        (
            "order.released",
            {
                "released": sorted({str(h.get("kind")) for h in released}),
                "holds": holds,
                "status": status,
                "free_to_ship": holds == [] and status == "open",
            },
        )
    ]


def cloud_events(
    conn: Connection, origin: str, entry: AuditEntry, policy_of: PolicyOf
) -> list[tuple[str, dict[str, Any]]]:
    """(type, CloudEvent) for each event ``entry`` stands for; none for most entries."""
    if entry.event not in _MAPPED:
        return []
    p = entry.payload
    if entry.event == "order.detected" and not p.get("kinds"):
        return []  # a clean order: no event (``_typed``), and no query to find that out
    order_id = _order_id(p)
    if order_id is None:
        return []
    world = p.get("world_id") if isinstance(p.get("world_id"), str) else None
    pid = p.get("proposal_id") if isinstance(p.get("proposal_id"), str) else None
    facts = about(conn, world_id=world, order_id=order_id, proposal_id=pid)
    typed = _typed(conn, entry, facts.world_id, order_id, facts.proposal)
    if not typed:
        return []
    version = p.get("order_version") if isinstance(p.get("order_version"), int) else None
    policy = p.get("policy") if isinstance(p.get("policy"), str) else None
    common = {
        "world_id": facts.world_id,
        "order_id": order_id,
        "order_version": version if version is not None else facts.order_version,
        "policy_version": policy or facts.policy_ref or policy_of(facts.world_id, order_id),
        "audit_seq": entry.seq,
        "audit_event": entry.event,
        "actor": entry.actor,
    }
    return [
        (
            type,
            {
                "specversion": SPECVERSION,
                "id": event_id(origin, entry.seq, type),
                "source": origin,
                "type": type,
                "time": entry.at,
                "subject": order_id,
                "datacontenttype": "application/json",
                "data": {**common, **data},
            },
        )
        for type, data in typed
    ]


class OutboxWriter:
    """The audit append hook that writes the outbox (see the module's docstring)."""

    def __init__(self, policy_of: PolicyOf) -> None:
        self._policy_of = policy_of

    def __call__(self, conn: Connection, origin: str, entries: Sequence[AuditEntry]) -> None:
        rows: list[NewEvent] = []
        for entry in entries:
            for type, event in cloud_events(conn, origin, entry, self._policy_of):
                body = json.dumps(event, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
                rows.append(NewEvent(event["id"], entry.seq, type, event["subject"], body))
        Outbox.add(conn, rows, at=datetime.now(UTC))
