"""Holds until a date (contract §8.1 ``hold_until_date``), released when the date comes: by the
service's sweep every ``EXDESK_SWEEP_INTERVAL_S``, or by ``exdesk review sweep``.

A release lifts the order's hold through the orders port (keyed: once, whoever sweeps; the log
brackets the call) and then marks the date released in one transaction with its audit entry.
A release cut short between the two is finished by the next sweep, under the same key. A hold
a person lifted earlier, or one an order resubmitted since no longer carries, is marked done
with a note.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from agent.execute import call_tool
from domain.digest import digest
from domain.models import Action
from service.wiring import Exdesk
from store.holds import DatedHold


def _release(app: Exdesk, hold: DatedHold, now: datetime) -> str | None:
    desk = app.desk(hold.world_id)
    key = "dated:" + digest([hold.world_id, hold.order_id, hold.kind, hold.plan_key])[:32]
    order = desk.order(hold.order_id)
    held = [h for h in order.holds if h.kind == hold.kind and h.until == hold.until]
    # a release cut short after its call (the mark's entry not written): replay it, so its
    # outcome is the release, not "no longer on the order"
    cut_short = desk.audit.by_key(f"{key}:release:requested") is not None
    if held or cut_short:
        action = Action(
            tool="orders",
            op="release_hold",
            args={"order_id": hold.order_id, "kind": hold.kind},
        )
        call_tool(desk, action, f"{key}:release", released_on=hold.until)
        detail = f"held until {hold.until}: released"
    else:
        detail = f"held until {hold.until}: the hold was no longer on the order"

    def mark(conn: Connection) -> bool:
        return desk.holds.released(conn, hold, now, detail)

    marked = desk.record(
        "hold.released",
        {
            "order_id": hold.order_id,
            "world_id": hold.world_id,
            "kind": hold.kind,
            "until": hold.until,
            "detail": detail,
        },
        key=f"{key}:released",
        change=mark,
    )
    return detail if marked is not False else None


def release_due(app: Exdesk, now: datetime) -> list[tuple[str, str]]:
    """Release every hold whose date has come; (order id, what happened) for each."""
    done: list[tuple[str, str]] = []
    for hold in app.holds.due(now):
        detail = _release(app, hold, now)
        if detail is not None:
            done.append((hold.order_id, detail))
    return done
