"""Builds exdesk from Settings: database, audit log, policy, checkers, graph, desks."""

from __future__ import annotations

import sqlite3
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from langgraph.checkpoint.sqlite import SqliteSaver

from agent.context import Checkers
from agent.desk import Desk
from agent.graph import build_graph
from agent.runner import Runner
from audit.keys import load_or_create_signing_key, load_public_key, public_key_path
from audit.log import AuditLog, Checkpoint
from domain.errors import InputError
from domain.models import Finding, Order
from domain.policy import Policy, default_policy, parse_policy
from knowledge.embedder import make_embedder
from knowledge.memory import SimilarCase
from knowledge.store import QdrantCaseMemory, open_memory
from service.settings import Settings
from store.db import create_schema, make_engine, sqlite_url
from store.review import ReviewQueue
from store.worlds import WorldStore
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes
from tools.simulated import simulated_toolbox


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the policy file ({exc.strerror})") from exc
    return parse_policy(text, str(path))


def memory_for(settings: Settings, *, persistent: bool) -> QdrantCaseMemory:
    """The data dir's case memory (or the Qdrant server's), or a fresh, empty one in memory."""
    embedder = make_embedder(settings.embedding_model)
    if not persistent:
        return open_memory(path=None, url=None, embedder=embedder)
    return open_memory(
        path=settings.data_dir / "qdrant", url=settings.qdrant_url, embedder=embedder
    )


class _OnDemandMemory:
    """Opens the case memory at the first search: embedded Qdrant locks its folder, so
    commands that never search (review, audit) must not hold it."""

    def __init__(self, desk: Exdesk) -> None:
        self._desk = desk

    def search(self, finding: Finding, order: Order, *, limit: int = 10) -> list[SimilarCase]:
        return self._desk.case_memory.search(finding, order, limit=limit)


class Exdesk:
    """One exdesk installation: everything under one data dir and database."""

    def __init__(self, settings: Settings, *, memory: QdrantCaseMemory | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.database_url or sqlite_url(settings.data_dir))
        create_schema(self.engine)
        self.audit = AuditLog(self.engine)
        self.audit.create_schema()
        self.store = WorldStore(self.engine)
        self.review = ReviewQueue(self.engine)
        self.policy = load_policy(settings.policy_file)
        self._memory = memory
        self._checkpoints = sqlite3.connect(
            settings.data_dir / "checkpoints.sqlite", check_same_thread=False
        )
        self._checkpoints.execute("PRAGMA journal_mode=WAL")
        self._checkpoints.execute("PRAGMA synchronous=NORMAL")
        self.runner = Runner(
            build_graph(checkpointer=SqliteSaver(self._checkpoints)),
            durability=settings.durability,
        )

    @property
    def case_memory(self) -> QdrantCaseMemory:
        """The memory given at construction, else the settings' one, opened on first use."""
        if self._memory is None:
            self._memory = memory_for(self.settings, persistent=True)
        return self._memory

    @cached_property
    def checkers(self) -> Checkers:
        return Checkers(address=I18nAddressRules(), hs=HsCodes())

    def desk(self, world_id: str) -> Desk:
        sim = self.store.load(world_id)
        return Desk(
            world_id=world_id,
            sim=sim,
            toolbox=simulated_toolbox(sim),
            policy=self.policy,
            checkers=self.checkers,
            memory=_OnDemandMemory(self),
            audit=self.audit,
            review=self.review,
            store=self.store,
        )

    @property
    def keys_dir(self) -> Path:
        return self.settings.data_dir / "keys"

    def checkpoint(self) -> Checkpoint:
        """Sign the audit log's current head with this desk's key (created on first use)."""
        return self.audit.checkpoint(load_or_create_signing_key(self.keys_dir))

    def public_key(self) -> Ed25519PublicKey | None:
        path = public_key_path(self.keys_dir)
        return load_public_key(path) if path.exists() else None

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
        self._checkpoints.close()
        self.engine.dispose()
