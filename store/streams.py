"""Where each order stands on a stream: the position of its newest event submitted.

Events of one order may reach the workers out of order (two workers each took one, or one was
redelivered after its worker died). ``claim_in`` lets an event through only when no newer event
of the order was claimed before it, in the caller's transaction, which submits the orders it
lets through before it commits; so an order's later version is never followed by an earlier
one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, select, update

from store.schema import stream_positions

_CHUNK = 500  # order ids per IN (...) list


class StreamPositions:
    def __init__(self, engine: Engine, stream: str) -> None:
        self.engine = engine
        self.stream = stream

    def claim_in(self, conn: Connection, world_id: str, wanted: Mapping[str, int]) -> set[str]:
        """Record each order's ``seq`` ({order id: seq}, one world) as its newest position,
        in the caller's transaction: the order ids let through. One a newer event of which was
        claimed before is not (nothing is recorded for it); the same ``seq`` again (a
        redelivery) is: its submission and run replay.

        The rows stay locked until the transaction ends (taken in order-id order, so two
        batches of the same orders wait for each other, never deadlock): submissions made in
        the same transaction come after any earlier claim's. A concurrent first claim of an
        order raises IntegrityError (run the transaction again)."""
        ids = sorted(wanted)
        held: dict[str, int] = {}
        for start in range(0, len(ids), _CHUNK):
            rows = conn.execute(
                select(stream_positions.c.order_id, stream_positions.c.seq)
                .where(
                    stream_positions.c.stream == self.stream,
                    stream_positions.c.world_id == world_id,
                    stream_positions.c.order_id.in_(ids[start : start + _CHUNK]),
                )
                .order_by(stream_positions.c.order_id)
                .with_for_update()
            )
            held.update((row.order_id, int(row.seq)) for row in rows)
        now = datetime.now(UTC)
        fresh: list[dict[str, object]] = []
        passed: set[str] = set()
        for order_id in ids:
            seq, before = wanted[order_id], held.get(order_id)
            if before is None:
                fresh.append(
                    {
                        "stream": self.stream,
                        "world_id": world_id,
                        "order_id": order_id,
                        "seq": seq,
                        "updated_at": now,
                    }
                )
            elif before > seq:
                continue  # a newer event of the order came first
            elif before < seq:
                conn.execute(
                    update(stream_positions)
                    .where(
                        stream_positions.c.stream == self.stream,
                        stream_positions.c.world_id == world_id,
                        stream_positions.c.order_id == order_id,
                    )
                    .values(seq=seq, updated_at=now)
                )
            passed.add(order_id)
        if fresh:
            conn.execute(insert(stream_positions), fresh)
        return passed

    def position(self, world_id: str, order_id: str) -> int | None:
        with self.engine.connect() as conn:
            seq = conn.execute(
                select(stream_positions.c.seq).where(
                    stream_positions.c.stream == self.stream,
                    stream_positions.c.world_id == world_id,
                    stream_positions.c.order_id == order_id,
                )
            ).scalar()
        return None if seq is None else int(seq)
