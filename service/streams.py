"""Order events on a stream: what an event is, and the port a stream backend provides.

An event is one JSON object: an order with the id of its world, loaded once into the store
(``{"world_id": "default", "order": {...}}``), or an eval case that brings its own world
(``{"id": "EX-1", "order": {...}, "world": {...}}``, contract §6; the world is loaded under the
case's id). ``exdesk publish`` puts a file of them on the stream; ``exdesk worker`` takes them
off (``service.worker``).

The port is small so that other engines can join: NATS JetStream is the backend today
(``service.stream_nats``); Kafka, RabbitMQ streams or Redis Streams would be one module each,
chosen by the URL's scheme in ``open_stream``. What a backend must do:

- ``publish``: store events durably before it returns, each under a subject (or partition)
  made from its order's key, so one order's events keep their order; the same message id
  twice in a short window is stored once;
- ``fetch``: hand out up to ``n`` events shared among every worker of the consumer group,
  each with its position on the stream and how many times it was delivered; an event stays
  the worker's while the process lives (the backend keeps telling the engine), and goes to
  another worker when it dies without a word;
- ``ack`` only when the work is done; ``retry`` to hand it back (after a delay);
  ``dead_letter`` to move it, with the reason, to the dead-letter subject.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.errors import ExdeskError, InputError
from domain.models import MAX_ID, Order, World
from service.inputs import describe_errors
from service.settings import Settings

PARTITIONS = 16  # subjects an order's key is hashed onto; one order always lands on one


class StreamUnavailable(ExdeskError):
    """The stream cannot be reached, or refused what was asked."""


class MalformedEvent(ExdeskError):
    """An event that is not one of the two shapes: it will never succeed."""


class OrderEvent(BaseModel):
    """An order of a world already in the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    world_id: str = Field(min_length=1, max_length=MAX_ID)
    order: Order


class CaseEvent(BaseModel):
    """An eval case: an order with the world it lives in (``expect`` is read by scorers
    only, and ignored here)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1, max_length=MAX_ID)
    order: Order
    world: World
    expect: dict[str, Any] | None = None

    @property
    def world_id(self) -> str:
        return self.id


Event = OrderEvent | CaseEvent


def event_body(event: Event) -> bytes:
    """The event as it goes on the stream: compact JSON, its order as the contract writes it."""
    if isinstance(event, OrderEvent):
        body: dict[str, Any] = {"world_id": event.world_id, "order": event.order.as_json()}
    else:
        body = {
            "id": event.id,
            "order": event.order.as_json(),
            "world": event.world.model_dump(mode="json", exclude_none=True),
        }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def parse_event(data: bytes) -> Event:
    """The event in ``data``; ``MalformedEvent`` naming the field and what is wrong."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:
        raise MalformedEvent(f"not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise MalformedEvent(
            "not a JSON object: an event is {world_id, order} or {id, order, world}"
        )
    model: type[BaseModel] = CaseEvent if "world" in raw else OrderEvent
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        raise MalformedEvent(describe_errors(exc)) from None


def partition_of(world_id: str, order_id: str) -> int:
    key = f"{world_id}\x00{order_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % PARTITIONS


def message_id(body: bytes) -> str:
    """The same event published twice (a publisher that died and ran again) has the same id."""
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True)
class Outgoing:
    world_id: str
    order_id: str
    body: bytes


@dataclass(frozen=True)
class Published:
    seq: int  # the event's position on the stream
    duplicate: bool  # the stream had it already (the same message id, a moment before)


@dataclass(frozen=True)
class Delivery:
    """One event handed to this worker."""

    data: bytes
    seq: int  # position on the stream: a later event of an order has a higher one
    attempt: int  # 1 the first time it is delivered
    published_at: datetime
    handle: Any  # the backend's own message


class Stream(Protocol):
    """A durable stream of order events shared by a group of workers (see the module)."""

    name: str

    def publish(self, events: Sequence[Outgoing]) -> list[Published]: ...

    def fetch(self, n: int, timeout: float) -> list[Delivery]: ...

    def ack(self, delivery: Delivery) -> bool: ...

    def retry(self, delivery: Delivery, delay: float) -> None: ...

    def dead_letter(self, delivery: Delivery, reason: str) -> None: ...

    def dead_letters(self, limit: int) -> list[tuple[int, str, bytes]]: ...

    def close(self) -> None: ...


def open_stream(url: str, settings: Settings) -> Stream:
    """The stream at ``url``; the scheme picks the backend."""
    scheme = urlsplit(url).scheme
    if scheme in ("nats", "tls"):
        from service.stream_nats import NatsStream

        return NatsStream(
            url,
            stream=settings.stream_name,
            subject=settings.stream_subject,
            consumer=settings.stream_consumer,
            ack_wait_s=settings.stream_ack_wait_s,
            replicas=settings.stream_replicas,
        )
    raise InputError(
        f"--stream {url!r}: exdesk reads order events from NATS JetStream (nats://HOST:4222); "
        "other engines are not supported yet"
    )
