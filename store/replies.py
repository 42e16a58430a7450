"""Customers' replies to an order waiting on them (contract §8.2), and what came of each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from store.schema import replies


@dataclass(frozen=True)
class Reply:
    reply_id: str
    world_id: str
    order_id: str
    text: str
    received_by: str
    received_at: datetime
    intent: str | None
    quote: str | None
    outcome: str  # address_written, asked_again, for_person
    detail: str | None
    proposed_address: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["received_at"] = self.received_at.isoformat()
        return out


def _reply(row: Any) -> Reply:
    return Reply(
        reply_id=row.reply_id,
        world_id=row.world_id,
        order_id=row.order_id,
        text=row.text,
        received_by=row.received_by,
        received_at=row.received_at,
        intent=row.intent,
        quote=row.quote,
        outcome=row.outcome,
        detail=row.detail,
        proposed_address=json.loads(row.proposed_address) if row.proposed_address else None,
    )


class Replies:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, conn: Connection, reply: Reply) -> None:
        data = reply.__dict__ | {
            "proposed_address": json.dumps(reply.proposed_address, ensure_ascii=False)
            if reply.proposed_address
            else None
        }
        conn.execute(insert(replies).values(**data))

    def get(self, reply_id: str) -> Reply | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(replies).where(replies.c.reply_id == reply_id)).first()
        return None if row is None else _reply(row)

    def for_order(self, world_id: str, order_id: str) -> list[Reply]:
        query = (
            select(replies)
            .where(replies.c.world_id == world_id, replies.c.order_id == order_id)
            .order_by(replies.c.received_at)
        )
        with self.engine.connect() as conn:
            return [_reply(r) for r in conn.execute(query)]

    def for_people(self, limit: int = 200) -> list[Reply]:
        """The replies a person must read, newest first."""
        query = (
            select(replies)
            .where(replies.c.outcome == "for_person")
            .order_by(replies.c.received_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_reply(r) for r in conn.execute(query)]
