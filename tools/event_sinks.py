"""Where events out go: a NATS JetStream subject, a webhook URL (``docs/events.md``).

A sink sends one CloudEvent (its JSON bytes, as the outbox stores them) and returns once the
other side has it: JetStream's publish acknowledgement (the message is stored), a webhook's
2xx. It raises :class:`SinkError`, saying whether trying again may help; the relay
(``service.relay``) retries, marks and waits. Both sinks hand the event id to the other side
to de-duplicate by: JetStream's ``Nats-Msg-Id`` header (the stream drops a repeat within its
duplicate window), the webhook's ``X-Exdesk-Event-Id`` header (and the body's ``id``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any, Protocol

import httpx

from domain.errors import ExdeskError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Exdesk-Signature"
EVENT_ID_HEADER = "X-Exdesk-Event-Id"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
DUPLICATE_WINDOW_S = 600.0  # of a stream the relay creates
_RETRY_STATUS = frozenset({408, 425, 429})


class SinkError(ExdeskError):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class EventSink(Protocol):
    name: str

    def send(self, event_id: str, type: str, body: bytes) -> None: ...

    def close(self) -> None: ...


def nats_servers(url: str) -> list[str]:
    """The servers of a NATS URL setting: one URL, or a cluster's as a comma-separated list
    (``nats://nats-1:4222,nats://nats-2:4222``); the client fails over between them."""
    return [part.strip() for part in url.split(",") if part.strip()]


def signature(secret: str, body: bytes) -> str:
    """The webhook's signature header value: ``sha256=`` and the HMAC-SHA256 of the body
    under the shared secret, in lowercase hex."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver checks (constant-time)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


class WebhookSink:
    """POST each event to ``url`` (CloudEvents structured mode), signed."""

    def __init__(self, url: str, secret: str, *, timeout_s: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise SinkError(
                f"EXDESK_EVENTS_WEBHOOK_URL {url!r} is not an http(s) URL", retryable=False
            )
        if not secret:
            raise SinkError(
                "EXDESK_EVENTS_WEBHOOK_URL is set but EXDESK_EVENTS_WEBHOOK_SECRET is not: "
                "events are only sent signed; set a shared secret the receiver checks",
                retryable=False,
            )
        self.name = f"webhook {url}"
        self._url, self._secret = url, secret
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def send(self, event_id: str, type: str, body: bytes) -> None:
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: signature(self._secret, body),
            EVENT_ID_HEADER: event_id,
        }
        try:
            answer = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"{self.name}: {type_name(exc)}: {exc}", retryable=True) from exc
        status = answer.status_code
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in _RETRY_STATUS
        raise SinkError(
            f"{self.name} answered {status} {answer.reason_phrase}", retryable=retryable
        )

    def close(self) -> None:
        self._client.close()


class NatsSink:
    """Publish each event to ``<subject>.<type>`` on NATS JetStream and wait for its ack.

    The relay creates stream ``stream`` (subjects ``<subject>.>``) when no stream takes the
    subject. nats-py is asyncio; this sink runs its own event loop, so it is called from
    plain threads (the relay's)."""

    def __init__(
        self, url: str, *, subject: str, stream: str, timeout_s: float, replicas: int = 1
    ) -> None:
        self.name = f"NATS {url} ({subject}.>)"
        self._url, self._subject, self._stream, self._timeout = url, subject, stream, timeout_s
        self._replicas = replicas
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._js: Any = None

    def _run(self, work: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(work, self._timeout * 2))

    async def _connect(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        async def quiet(error: Exception) -> None:
            log.debug("%s: %s", self.name, error)

        self._nc = await nats.connect(
            nats_servers(self._url),
            connect_timeout=self._timeout,
            allow_reconnect=False,
            error_cb=quiet,
        )
        self._js = self._nc.jetstream(timeout=self._timeout)
        wanted = f"{self._subject}.>"
        try:
            await self._js.find_stream_name_by_subject(wanted)
        except NotFoundError:
            await self._js.add_stream(
                name=self._stream,
                subjects=[wanted],
                duplicate_window=DUPLICATE_WINDOW_S,
                num_replicas=self._replicas,
            )

    async def _publish(self, event_id: str, type: str, body: bytes) -> None:
        if self._nc is None or self._nc.is_closed:
            await self._connect()
        await self._js.publish(
            f"{self._subject}.{type}",
            body,
            timeout=self._timeout,
            headers={"Nats-Msg-Id": event_id},
        )

    def send(self, event_id: str, type: str, body: bytes) -> None:
        try:
            self._run(self._publish(event_id, type, body))
        except Exception as exc:  # nats-py raises its own errors, OSError and timeouts
            self._drop()
            what = str(exc) or type_name(exc)
            raise SinkError(f"{self.name}: {type_name(exc)}: {what}", retryable=True) from exc

    def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                self._run(nc.close())
            except Exception as exc:  # closing a broken connection: nothing left to save
                log.debug("%s: close: %s", self.name, exc)

    def close(self) -> None:
        self._drop()
        self._loop.close()


def type_name(exc: BaseException) -> str:
    return type(exc).__name__
