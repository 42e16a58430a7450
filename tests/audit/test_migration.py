"""The transparency log's migration: a new database gets a random origin and an empty tree; a
log written in the earlier format is refused with what to do, and left as it was."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text

from store.db import transaction
from store.migrate import SchemaError, _config, current_revisions, head_revisions, upgrade


def _upgrade_to(engine: Engine, revision: str) -> None:
    with transaction(engine) as conn:
        config = _config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def test_a_new_database_gets_an_origin_and_an_empty_border(engine: Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT seq, origin, frontier, log_key FROM audit_head")).one()
    assert row.seq == 0 and row.frontier == "" and row.log_key is None
    assert row.origin.startswith("exdesk.local/audit/") and len(row.origin) == 35


def test_a_log_in_the_earlier_format_is_refused_and_kept(engine: Engine) -> None:
    _upgrade_to(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, event, payload, prev_hash, hash) "
                "VALUES (1, 'x', 'agent', 'e', '{}', :g, :h)"
            ),
            {"g": "0" * 64, "h": "1" * 64},
        )
    with pytest.raises(SchemaError, match=r"holds 1 entries written before .* export"):
        upgrade(engine)
    assert current_revisions(engine) == {"0001"}
    assert current_revisions(engine) != head_revisions()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == 1
