"""Settings, from the environment (prefix EXDESK_) and command-line flags."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url

from audit.keys import PRIVATE_KEY_FILE
from knowledge.store import DEFAULT_RERANK, check_rerank
from tools.http_backends import PORTS as TOOL_PORTS


def config_dir() -> Path:
    """The user's configuration folder for exdesk ($XDG_CONFIG_HOME/exdesk or ~/.config/exdesk)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "exdesk"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXDESK_", frozen=True)

    data_dir: Path = Path(".exdesk")
    # SQLAlchemy URL of the store, review queue, audit log and graph checkpoints; SQLite
    # under data_dir if unset.
    database_url: str | None = None
    # A policy file of your own; the shipped default policy if unset.
    policy_file: Path | None = None
    # How often the graph checkpoints: every step, written while the next step runs ("async",
    # the default: a crash loses at most the step in flight, which runs again, keyed), every
    # step before the next one starts ("sync"), or only when a thread pauses or ends ("exit").
    durability: Literal["sync", "async", "exit"] = "async"
    # Case memory: a Qdrant server URL (embedded Qdrant under data_dir if unset), the embedding
    # model ("multilingual", "hash", or a sentence-transformers name or path; see
    # knowledge.embedder), and the similarity below which a past case is not evidence (cosine;
    # the model's measured default if unset).
    qdrant_url: str | None = None
    # On a Qdrant cluster: the copies of each shard of the case memory's collection, when
    # exdesk makes it (1; 2 or 3 so that a node may be lost). An existing collection keeps its.
    qdrant_replicas: int = Field(default=1, ge=1, le=10)
    embedding_model: str = "multilingual"
    similarity_floor: float | None = None
    # How a search orders what the embedding found (knowledge.store.RERANKS): "dense", or
    # fused with the language-neutral codes the texts share (knowledge.codes).
    rerank: str = DEFAULT_RERANK
    # The audit log's signing key (Ed25519, PEM): one per installation, shared by every process
    # that writes the log. Default: under the user's config dir, one per database.
    signing_key: Path | None = None
    # Drills: make simulated tool operations fail or kill the process ("notify.send=crash-after").
    simulated_faults: str | None = None
    # The shop's systems (README, "Connecting your shop"): the base URL of the shop API
    # (docs/shop-api.json) for every tool port, and per-port URLs that override it
    # (EXDESK_TOOLS_INVENTORY_URL, ...; "simulated" keeps that port simulated). A port with no
    # URL is simulated, over the store's world, as when none is set.
    shop_url: str | None = None
    tools_orders_url: str | None = None
    tools_inventory_url: str | None = None
    tools_customs_url: str | None = None
    tools_payment_url: str | None = None
    tools_carrier_url: str | None = None
    tools_notify_url: str | None = None
    tools_facts_url: str | None = None
    # Sent as "Authorization: Bearer ..." to every port's URL, when set.
    shop_token: str | None = None
    # The leash on every HTTP port: a try's timeout, retries (with backoff from
    # tools_backoff_s, doubling, jittered), and the circuit: that many failed tries in a row
    # open it for tools_breaker_reset_s.
    tools_timeout_s: float = Field(default=10.0, gt=0)
    tools_retries: int = Field(default=3, ge=0, le=10)
    tools_backoff_s: float = Field(default=0.2, ge=0)
    tools_breaker_failures: int = Field(default=5, ge=1)
    tools_breaker_reset_s: float = Field(default=30.0, ge=0)
    # How long a process waits for another that holds an order, or the case memory (seconds).
    lock_timeout_s: float = 120.0
    # The service: how often it escalates and expires proposals past their deadlines (seconds).
    sweep_interval_s: float = 60.0
    # An API token: for CLI votes once the desk has users, and (a supervisor's) to change people.
    token: str | None = None
    # The model (contract §8): any OpenAI-compatible endpoint. Off unless OPENAI_BASE_URL is
    # set (these two keep the names every OpenAI client reads, without the EXDESK_ prefix);
    # then EXDESK_LLM_MODEL names the model. See README, "A model in the loop".
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )
    openai_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    llm_model: str | None = None
    # How the answer is asked for: a response_format JSON schema, or one tool's arguments.
    llm_output: Literal["json_schema", "tool"] = "json_schema"
    llm_timeout_s: float = Field(default=20.0, gt=0)
    llm_retries: int = Field(default=2, ge=0, le=5)
    llm_backoff_s: float = Field(default=0.5, ge=0)
    llm_concurrency: int = Field(default=2, ge=1)
    # What one process (a run, an eval, a service) may spend on the model.
    llm_max_calls: int = Field(default=1000, ge=0)
    llm_max_tokens: int = Field(default=1_000_000, ge=0)
    # Orders from a stream (README, "Deployment"): the stream's URL (nats://host:4222; unset:
    # no stream), the JetStream stream that holds order events and the subject prefix they are
    # published under (one subject per partition of the order ids), the durable consumer the
    # workers share, how many events a worker takes at once, how long a delivery stays a
    # worker's without a word from it (a live worker extends it; a dead one's events go to
    # another after it), and how many attempts an event that fails gets before it goes to the
    # dead-letter subject; and how many copies of the streams a NATS cluster keeps (1 on a
    # single server; 3 on a cluster of three, so that one node may be lost).
    stream_url: str | None = None
    stream_name: str = Field(default="EXDESK_ORDERS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    stream_subject: str = Field(
        default="exdesk.orders", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    stream_consumer: str = Field(default="exdesk-workers", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    stream_batch: int = Field(default=32, ge=1, le=1000)
    stream_ack_wait_s: float = Field(default=30.0, gt=0)
    stream_max_attempts: int = Field(default=5, ge=1, le=100)
    stream_replicas: int = Field(default=1, ge=1, le=5)

    @field_validator("rerank")
    @classmethod
    def _known_rerank(cls, value: str) -> str:
        return check_rerank(value)

    def tool_urls(self) -> dict[str, str]:
        """Port name → the URL of its system, for the ports that are over HTTP."""
        urls: dict[str, str] = {}
        for port in TOOL_PORTS:
            url = getattr(self, f"tools_{port}_url") or self.shop_url
            if url and url.strip().lower() != "simulated":
                urls[port] = url.strip()
        return urls

    # Events out (docs/events.md): every event is written to the outbox with the audit entry
    # it describes (unless events_outbox is off); the relay (`exdesk events relay`, and
    # `exdesk serve` when a sink is set) publishes them to NATS JetStream (subject
    # <events_subject>.<type>, stream events_stream) and/or POSTs them to a webhook, signed
    # with HMAC-SHA256 under events_webhook_secret; events_replicas: the copies a NATS cluster
    # keeps of that stream, when the relay makes it.
    events_outbox: bool = True
    events_nats_url: str | None = None
    events_subject: str = Field(
        default="exdesk.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    events_stream: str = Field(default="EXDESK_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")
    events_replicas: int = Field(default=1, ge=1, le=5)
    events_webhook_url: str | None = None
    events_webhook_secret: str | None = None
    events_timeout_s: float = Field(default=10.0, gt=0)
    # Tries per event and round (the first included), waiting backoff × 2^n with full jitter,
    # at most events_backoff_max_s; an event still refused waits and is tried again later.
    events_tries: int = Field(default=5, ge=1, le=20)
    events_backoff_s: float = Field(default=0.5, ge=0)
    events_backoff_max_s: float = Field(default=30.0, ge=0)
    events_batch: int = Field(default=100, ge=1, le=10_000)
    # How long a relay's claim on the events it publishes lasts (another relay takes over
    # the events of one that died after this), and how often an idle relay looks again.
    events_lease_s: float = Field(default=60.0, gt=0)
    events_poll_s: float = Field(default=1.0, gt=0)

    @property
    def events_sinks(self) -> bool:
        """Whether anywhere to publish events is configured."""
        return bool(self.events_nats_url or self.events_webhook_url)

    @property
    def llm_enabled(self) -> bool:
        return bool(self.openai_base_url)

    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'exdesk.db'}"

    def signing_key_path(self) -> Path:
        if self.signing_key is not None:
            return self.signing_key
        where = make_url(self.database()).render_as_string(hide_password=True)
        install = hashlib.sha256(where.encode()).hexdigest()[:16]
        return config_dir() / "keys" / install / PRIVATE_KEY_FILE
