"""Words written for people (a customer's message, a plan explained, a summary), cached: the
same subject, plan digest, purpose and language is written once, so a page view never asks a
model twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from domain.digest import digest
from store.db import write
from store.schema import model_words


@dataclass(frozen=True)
class Words:
    text: str
    by: str  # "model:<name>" (marked as the model's wherever shown) or "template"
    language: str

    @property
    def by_model(self) -> bool:
        return self.by.startswith("model:")


def words_key(purpose: str, subject: str, plan_digest: str, language: str) -> str:
    return digest([purpose, subject, plan_digest, language])[:64]


class WordsCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> Words | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(model_words).where(model_words.c.key == key)).first()
        return None if row is None else Words(text=row.text, by=row.by, language=row.language)

    def put(
        self,
        key: str,
        purpose: str,
        subject: str,
        words: Words,
        *,
        then: Callable[[Connection], object] | None = None,
    ) -> Words:
        """Keep ``words`` under ``key``, and run ``then`` (the audit entry of the model's call
        that wrote them) in the same transaction: both commit or neither does. When another
        process kept some first, theirs stand (and ``then`` is not run)."""

        def work(conn: Connection) -> Words:
            row = conn.execute(select(model_words).where(model_words.c.key == key)).first()
            if row is not None:
                return Words(text=row.text, by=row.by, language=row.language)
            conn.execute(
                insert(model_words).values(
                    key=key,
                    purpose=purpose,
                    subject=subject[:200],
                    language=words.language,
                    by=words.by[:200],
                    text=words.text,
                    created_at=datetime.now(UTC),
                )
            )
            if then is not None:
                then(conn)
            return words

        try:
            return write(self.engine, work)
        except IntegrityError:  # another process inserted it a moment ago
            return self.get(key) or words
