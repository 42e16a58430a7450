"""Builds exdesk from Settings: database and migrations, audit log, policy, checkers, graph
with its checkpointer, case memory, and a desk per world.

Every process builds its own; several may share one data dir or database at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from sqlalchemy import Engine, make_url

from agent.context import Checkers
from agent.desk import Desk
from agent.graph import build_graph
from agent.runner import Runner
from audit.checkpoint import SignedCheckpoint
from audit.keys import KeyFile
from audit.log import AuditLog
from domain import models
from domain.errors import InputError, ToolRejected
from domain.models import Kind, Order, Strategy
from domain.policy import Policy, default_policy, parse_policy
from knowledge.cases import PastCase
from knowledge.embedder import Remembered, make_embedder
from knowledge.memory import CaseStore, SimilarCase
from knowledge.shared import SharedFolderMemory
from knowledge.store import MemoryBase, open_memory
from service.events import OutboxWriter
from service.policy_book import PolicyBook, PolicyText, seed
from service.settings import Settings
from store.db import make_engine, sqlite_path
from store.events import Outbox
from store.holds import HoldDates
from store.migrate import schema_lock, upgrade
from store.orders import OrderBook
from store.policies import PolicyVersions
from store.replies import Replies
from store.review import ReviewQueue
from store.users import Users
from store.world import WorldRows
from tools.address import I18nAddressRules
from tools.hs_codes import HsCodes
from tools.http_backends import HttpShop
from tools.http_client import Leash
from tools.model import Budget, ChatModel, GuardedModel
from tools.openai_model import OpenAIChatModel
from tools.ports import WorldFacts
from tools.simulated import SimulatedBackend, parse_faults

# What graph checkpoints may hold: the domain models in the graph's state, nothing else.
CHECKPOINT_TYPES = (
    models.Finding,
    models.Draft,
    models.Plan,
    models.Action,
    models.Decision,
    models.DecisionStatus,
    models.Kind,
    models.Strategy,
    models.Tier,
)


def read_policy(path: Path) -> PolicyText:
    """A policy file, parsed (errors name the file, line and field)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the policy file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    return PolicyText(parse_policy(text, str(path)), text, str(path))


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return default_policy()
    return read_policy(path).policy


def model_for(settings: Settings, model: ChatModel | None = None) -> GuardedModel | None:
    """The model on its leash (``tools.model``), or None when no endpoint is set: then exdesk
    works exactly as without one. ``model`` replaces the endpoint (tests, drills)."""
    if model is None:
        if not settings.llm_enabled:
            return None
        if not settings.llm_model:
            raise InputError(
                f"OPENAI_BASE_URL is set ({settings.openai_base_url}) but EXDESK_LLM_MODEL is "
                "not: name the model to use (GET <base url>/models lists what the server has), "
                "or unset OPENAI_BASE_URL to run without a model"
            )
        model = OpenAIChatModel(
            base_url=str(settings.openai_base_url),
            api_key=settings.openai_api_key,
            model=settings.llm_model,
            output=settings.llm_output,
        )
    return GuardedModel(
        model,
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        backoff_s=settings.llm_backoff_s,
        concurrency=settings.llm_concurrency,
        budget=Budget(max_calls=settings.llm_max_calls, max_tokens=settings.llm_max_tokens),
    )


def shop_for(settings: Settings) -> HttpShop | None:
    """The ports over HTTP to the shop's systems, or None when no URL is set (every port
    simulated, as before)."""
    urls = settings.tool_urls()
    if not urls:
        return None
    for port, url in urls.items():
        if not url.startswith(("http://", "https://")):
            raise InputError(
                f"the URL of the {port} port is {url!r}: give an http:// or https:// URL "
                f"(EXDESK_TOOLS_{port.upper()}_URL or EXDESK_SHOP_URL), or 'simulated'"
            )
    leash = Leash(
        timeout_s=settings.tools_timeout_s,
        retries=settings.tools_retries,
        backoff_s=settings.tools_backoff_s,
        breaker_failures=settings.tools_breaker_failures,
        breaker_reset_s=settings.tools_breaker_reset_s,
    )
    headers = {"Authorization": f"Bearer {settings.shop_token}"} if settings.shop_token else {}
    return HttpShop(urls, leash=leash, headers=headers)


def memory_for(settings: Settings, *, persistent: bool) -> CaseStore:
    """The data dir's case memory (or the Qdrant server's), or a fresh, empty one that does not
    learn (an eval's: its results must not depend on history or on the order of its cases)."""
    embedder = Remembered(make_embedder(settings.embedding_model))
    floor, rerank = settings.similarity_floor, settings.rerank
    if not persistent:
        return open_memory(url=None, embedder=embedder, floor=floor, learns=False, rerank=rerank)
    if settings.qdrant_url:
        return open_memory(
            url=settings.qdrant_url,
            embedder=embedder,
            floor=floor,
            replicas=settings.qdrant_replicas,
            rerank=rerank,
        )
    return SharedFolderMemory(
        settings.data_dir / "cases",
        embedder,
        timeout=settings.lock_timeout_s,
        floor=floor,
        rerank=rerank,
    )


def _checkpointer(engine: Engine, stack: ExitStack) -> BaseCheckpointSaver[Any]:
    """Graph checkpoints in the same database: PostgresSaver on PostgreSQL, SqliteSaver on
    SQLite (in the database file itself)."""
    serde = JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINT_TYPES)
    if engine.dialect.name == "postgresql":
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        pool: ConnectionPool[Any] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=True,
        )
        stack.callback(pool.close)
        saver: BaseCheckpointSaver[Any] = PostgresSaver(pool, serde=serde)
    else:
        path = sqlite_path(engine)
        conn = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, timeout=60.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        stack.callback(conn.close)
        saver = SqliteSaver(conn, serde=serde)
    with schema_lock(engine):
        saver.setup()  # type: ignore[attr-defined]
    return saver


class Exdesk:
    """One exdesk process's view of an installation: one data dir and database."""

    def __init__(
        self,
        settings: Settings,
        *,
        memory: CaseStore | None = None,
        model: ChatModel | None = None,
    ) -> None:
        self.settings = settings
        self._stack = ExitStack()
        try:
            url = settings.database()
            if make_url(url).get_backend_name() == "sqlite":
                settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = make_engine(url)
            self._stack.callback(self.engine.dispose)
            upgrade(self.engine)
            self.signing_key = KeyFile(settings.signing_key_path())
            hook = OutboxWriter(self._policy_ref) if settings.events_outbox else None
            self.audit = AuditLog(self.engine, signer=self.signing_key, on_append=hook)
            self.outbox = Outbox(self.engine)
            self.worlds = WorldRows(self.engine)
            self.shop = shop_for(settings)
            if self.shop is not None:
                self._stack.callback(self.shop.close)
            self.orders = OrderBook(self.engine) if self.shop is None else ShopOrders(self)
            self.review = ReviewQueue(self.engine)
            self.users = Users(self.engine)
            self.holds = HoldDates(self.engine)
            self.replies = Replies(self.engine)
            pinned = read_policy(settings.policy_file) if settings.policy_file else None
            self.policy_store = PolicyVersions(self.engine)
            seed(self.policy_store, pinned)
            self.policies = PolicyBook(self.policy_store, pinned=pinned)
            self.faults = parse_faults(settings.simulated_faults)
            self.model = model_for(settings, model)
            self._memory = memory
            self.runner = Runner(
                build_graph(checkpointer=_checkpointer(self.engine, self._stack)),
                durability=settings.durability,
                lock_timeout=settings.lock_timeout_s,
            )
        except BaseException:
            self._stack.close()
            raise

    def _policy_ref(self, world_id: str | None, order_id: str) -> str | None:
        """The policy version an event names when its audit entry names none."""
        return self.policy_for(order_id).ref

    @property
    def policy(self) -> Policy:
        """The active policy version (as of the last ``refresh_policy``), or the policy file
        this process was started with."""
        return self.policies.active

    def refresh_policy(self) -> bool:
        """Read the store's policy state again if it changed: one small query (call it once
        per order or batch); whether it changed."""
        return self.policies.refresh()

    def policy_for(self, order_id: str) -> Policy:
        """The policy version that decides ``order_id``: the active one, or a rollout's
        candidate for its share of orders (``service.policy_book``). No SQL: as of the last
        ``refresh_policy``."""
        return self.policies.for_order(order_id)

    @property
    def case_memory(self) -> CaseStore:
        """The memory given at construction, else the settings' one."""
        if self._memory is None:
            self._memory = memory_for(self.settings, persistent=True)
            self._stack.callback(self._memory.close)
        return self._memory

    def host_case_memory(self) -> bool:
        """Hold the data dir's case memory open for the other processes from now on (a
        long-lived process does, so that short runs never pay for opening it); whether this
        process hosts it. Nothing to do with a Qdrant server, or when another process hosts."""
        memory = self.case_memory
        return isinstance(memory, SharedFolderMemory) and memory.serve()

    def warm_up(self) -> None:
        """Load now what the first orders would otherwise wait for: the checkers' tables and
        the case memory's embedding model (seconds, the first time). A worker does this
        before it takes events, so that its first batch at a peak is not seconds behind."""
        _ = self.checkers
        memory = self.case_memory
        if isinstance(memory, MemoryBase):
            memory.embedder.embed(["exdesk warm-up"])

    @cached_property
    def checkers(self) -> Checkers:
        return Checkers(address=I18nAddressRules(), hs=HsCodes())

    def backend(self, world_id: str) -> SimulatedBackend:
        return SimulatedBackend(self.engine, world_id, faults=self.faults, rows=self.worlds)

    def facts(self, world_id: str) -> WorldFacts:
        """What the world knows: from the shop's facts port when it has a URL, else the
        store's world."""
        if self.shop is not None and "facts" in self.shop.urls:
            facts: WorldFacts = self.shop.backends(world_id)["facts"]
            return facts
        return self.backend(world_id).facts

    def desk(self, world_id: str, order_id: str | None = None) -> Desk:
        """The desk of ``world_id``: each port over HTTP where the settings give it a URL, the
        others simulated over the store's world; under the policy that decides ``order_id``
        (``policy_for``), or the active one."""
        backend = self.backend(world_id)
        http = self.shop.backends(world_id) if self.shop is not None else {}
        facts = http.pop("facts", backend.facts)
        return Desk(
            world_id=world_id,
            engine=self.engine,
            facts=facts,
            toolbox=backend.toolbox(**http),
            policy=self.policy if order_id is None else self.policy_for(order_id),
            checkers=self.checkers,
            memory=_Lazy(self),
            audit=self.audit,
            review=self.review,
            orders=self.orders,
            model=self.model,
        )

    @property
    def signing_key_path(self) -> Path:
        return self.settings.signing_key_path()

    def checkpoint(self) -> SignedCheckpoint | None:
        """The audit log's newest checkpoint. Every commit that appends signs one (with the
        installation's key, made at the first append), so there is nothing left to sign."""
        return self.audit.latest_checkpoint()

    def public_key(self) -> Ed25519PublicKey | None:
        """The installation's public key (None before the first append made the key pair)."""
        return self.signing_key.public_key()

    def close(self) -> None:
        self._stack.close()


class ShopOrders(OrderBook):
    """Orders as submitted, in the store (their versions); the order as it stands now from the
    orders port, so that what people review is what the shop holds when that port is over
    HTTP (the store's copy changes only through simulated ports)."""

    def __init__(self, app: Exdesk) -> None:
        super().__init__(app.engine)
        self._app = app

    def current(self, world_id: str, order_id: str) -> Order | None:
        shop = self._app.shop
        if shop is None or "orders" not in shop.urls:
            return super().current(world_id, order_id)
        try:
            found: Order = shop.backend("orders", world_id).get(order_id)
            return found
        except ToolRejected:
            return None


class _Lazy:
    """The case memory, made at the first search: commands that never search (review, audit)
    never load an embedder."""

    def __init__(self, app: Exdesk) -> None:
        self._app = app

    def evidence(
        self,
        text: str,
        kind: Kind,
        strategies: Sequence[Strategy],
        *,
        per_strategy: int = 10,
        variants: Sequence[tuple[Strategy, Mapping[str, str]]] = (),
    ) -> list[SimilarCase]:
        return self._app.case_memory.evidence(
            text, kind, strategies, per_strategy=per_strategy, variants=variants
        )

    def learn(self, case: PastCase) -> bool:
        return self._app.case_memory.learn(case)
