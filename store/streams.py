"""Where each order stands on a stream: the position of its newest event submitted.

Events of one order may reach the workers out of order (two workers each took one, or one was
redelivered after its worker died). ``claim`` lets an event through only when no newer event of
the order was submitted before it, so an order's later version is never followed by an earlier
one. The caller holds the order's lock across ``claim`` and the submission.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, and_, insert, select, update

from store.db import write
from store.schema import stream_positions


class StreamPositions:
    def __init__(self, engine: Engine, stream: str) -> None:
        self.engine = engine
        self.stream = stream

    def claim(self, world_id: str, order_id: str, seq: int) -> bool:
        """Record ``seq`` as the order's newest position; False (and nothing recorded) when a
        newer event of the order was claimed before. The same ``seq`` again (a redelivery)
        is let through: its submission and run replay."""
        where = and_(
            stream_positions.c.stream == self.stream,
            stream_positions.c.world_id == world_id,
            stream_positions.c.order_id == order_id,
        )

        def work(conn: Connection) -> bool:
            now = datetime.now(UTC)
            held = conn.execute(
                select(stream_positions.c.seq).where(where).with_for_update()
            ).scalar()
            if held is None:
                conn.execute(
                    insert(stream_positions).values(
                        stream=self.stream,
                        world_id=world_id,
                        order_id=order_id,
                        seq=seq,
                        updated_at=now,
                    )
                )
                return True
            if int(held) > seq:
                return False
            conn.execute(update(stream_positions).where(where).values(seq=seq, updated_at=now))
            return True

        return write(self.engine, work)

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
