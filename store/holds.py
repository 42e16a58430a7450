"""Holds until a date (contract §8.1 ``hold_until_date``): the desk's own record of when each
is released, which the sweep reads. The hold itself is on the order (``Hold.until``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.schema import hold_dates


@dataclass(frozen=True)
class DatedHold:
    world_id: str
    order_id: str
    kind: str
    until: str
    release_at: datetime
    plan_key: str


class HoldDates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def schedule(
        self,
        conn: Connection,
        *,
        world_id: str,
        order_id: str,
        kind: str,
        until: str,
        release_at: datetime,
        plan_key: str,
    ) -> None:
        """Record when the order's hold of ``kind`` is released (a later plan's date replaces an
        earlier one)."""
        key = and_(
            hold_dates.c.world_id == world_id,
            hold_dates.c.order_id == order_id,
            hold_dates.c.kind == kind,
        )
        values = {
            "until": until,
            "release_at": release_at,
            "plan_key": plan_key,
            "released_at": None,
            "detail": None,
        }
        if conn.execute(update(hold_dates).where(key).values(**values)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(hold_dates).values(
                        world_id=world_id, order_id=order_id, kind=kind, **values
                    )
                )
        except IntegrityError:  # another process recorded it a moment ago
            conn.execute(update(hold_dates).where(key).values(**values))

    def due(self, now: datetime) -> list[DatedHold]:
        query = (
            select(hold_dates)
            .where(hold_dates.c.released_at.is_(None), hold_dates.c.release_at <= now)
            .order_by(hold_dates.c.release_at)
        )
        with self.engine.connect() as conn:
            return [
                DatedHold(
                    world_id=r.world_id,
                    order_id=r.order_id,
                    kind=r.kind,
                    until=r.until,
                    release_at=r.release_at,
                    plan_key=r.plan_key,
                )
                for r in conn.execute(query)
            ]

    def released(self, conn: Connection, hold: DatedHold, at: datetime, detail: str) -> bool:
        """Mark it released, once: False when another process did it first."""
        result = conn.execute(
            update(hold_dates)
            .where(
                hold_dates.c.world_id == hold.world_id,
                hold_dates.c.order_id == hold.order_id,
                hold_dates.c.kind == hold.kind,
                hold_dates.c.plan_key == hold.plan_key,
                hold_dates.c.released_at.is_(None),
            )
            .values(released_at=at, detail=detail)
        )
        return bool(result.rowcount)
