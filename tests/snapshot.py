"""What a database holds, to show that a refused or failed change left nothing behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, Table, inspect, select

# The graph checkpointer's tables: LangGraph's own, written outside the desk's transactions.
NOT_OURS = frozenset({"checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes"})
NOT_OURS |= {"checkpoint_migrations", "alembic_version"}


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every exdesk table (the audit log's included), table by table."""
    with engine.connect() as conn:
        names = sorted(set(inspect(conn).get_table_names()) - NOT_OURS)
        out: dict[str, list[tuple[Any, ...]]] = {}
        for name in names:
            table = Table(name, MetaData(), autoload_with=conn)
            rows = conn.execute(select(table)).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
        return out


def changed(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> dict[str, int]:
    """The tables whose rows differ, with how many rows each gained (or lost)."""
    return {
        name: len(after.get(name, [])) - len(before.get(name, []))
        for name in sorted(set(before) | set(after))
        if before.get(name) != after.get(name)
    }
