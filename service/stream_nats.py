"""The stream port (``service.streams``) on NATS JetStream, through ``nats-py``.

Two JetStream streams, made on first use (file storage): ``NAME`` holds the order events under
``SUBJECT.<partition>``, ``NAME_DEAD`` the dead letters under ``SUBJECT_dead`` (the original
event, with headers saying why, after how many attempts, and where it was), each kept in
``replicas`` copies (``EXDESK_STREAM_REPLICAS``: 3 on a cluster of three). The workers share
one durable pull consumer with explicit acks: an event not acked within ``ack_wait_s`` goes to
another worker, and a worker keeps its own events by telling JetStream it is still working on
them (``+WPI``) every third of that while it lives. The client reconnects by itself when NATS
restarts; a call made while it is away waits for it or fails with ``StreamUnavailable``.

nats-py is asyncio; exdesk's work is not. The client lives on an event loop in a thread of its
own, and the methods here are plain calls into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from service.streams import Delivery, Outgoing, Published, StreamUnavailable, partition_of
from tools.event_sinks import nats_servers

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0  # what one call may wait, NATS restarting included
DUPLICATE_WINDOW_S = 120.0
IN_FLIGHT = 512  # publishes awaiting their acknowledgement at once


class NatsStream:
    def __init__(
        self,
        url: str,
        *,
        stream: str,
        subject: str,
        consumer: str,
        ack_wait_s: float,
        replicas: int = 1,
    ) -> None:
        self.url = url
        self.replicas = replicas
        self.name = stream
        self.dead_name = f"{stream}_DEAD"
        self.subject = subject
        self.dead_subject = f"{subject}_dead"
        self.consumer = consumer
        self.ack_wait_s = ack_wait_s
        self._held: dict[int, Msg] = {}  # what this worker holds, by stream position
        self._early: list[Msg] = []  # delivered beyond a fetch's batch: the next fetch's
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        self._warned = False
        try:
            self._nc, self._js = self._call(self._connect(), CONNECT_TIMEOUT_S + CALL_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise
        self._keeper = asyncio.run_coroutine_threadsafe(self._keep_held(), self._loop)

    # --- plumbing ------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            if future.done():  # a timeout of the call's own, inside nats-py
                raise StreamUnavailable(f"NATS at {self.url}: timed out") from exc
            future.cancel()
            raise StreamUnavailable(
                f"NATS at {self.url} did not answer within {timeout:.0f} s"
            ) from exc
        except (nats.errors.Error, OSError) as exc:
            raise StreamUnavailable(f"NATS at {self.url}: {exc}") from exc

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        async def quiet(exc: Exception) -> None:
            if not self._warned:  # say it once per outage, not once per reconnect attempt
                self._warned = True
                print(f"exdesk: NATS at {self.url}: {exc}; reconnecting", file=sys.stderr)

        async def back() -> None:
            if self._warned:
                print(f"exdesk: NATS at {self.url}: reconnected", file=sys.stderr)
            self._warned = False

        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=nats_servers(self.url),
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=quiet,
                    reconnected_cb=back,
                    name="exdesk",
                ),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise StreamUnavailable(
                f"cannot reach NATS at {self.url} ({str(exc) or 'no answer'}); is nats-server "
                "running there with JetStream on (nats-server -js)?"
            ) from exc
        js = nc.jetstream(timeout=10)
        try:
            await self._ensure(js, self.name, [f"{self.subject}.*"])
            await self._ensure(js, self.dead_name, [self.dead_subject])
        except BaseException:
            await nc.close()
            raise
        return nc, js

    async def _ensure(self, js: JetStreamContext, name: str, subjects: list[str]) -> None:
        """Make the JetStream stream unless it is there (another process may make it first); one
        that is there keeps its own replicas, said when they are fewer than asked."""
        for _ in range(3):
            try:
                info = await js.stream_info(name)
                kept = info.config.num_replicas or 1
                if kept < self.replicas:
                    print(
                        f"exdesk: the JetStream stream {name} keeps {kept} replica(s), "
                        f"EXDESK_STREAM_REPLICAS asks {self.replicas}: exdesk does not change "
                        f"a stream it finds; raise it with `nats stream edit {name} --replicas "
                        f"{self.replicas}`",
                        file=sys.stderr,
                    )
                return
            except nats.js.errors.NotFoundError:
                pass
            except nats.js.errors.ServiceUnavailableError as exc:
                raise StreamUnavailable(
                    f"NATS at {self.url} has no JetStream; start nats-server with -js"
                ) from exc
            try:
                await js.add_stream(
                    StreamConfig(
                        name=name,
                        subjects=subjects,
                        storage=StorageType.FILE,
                        duplicate_window=DUPLICATE_WINDOW_S,
                        num_replicas=self.replicas,
                    )
                )
                return
            except nats.js.errors.BadRequestError:
                await asyncio.sleep(0.1)  # made by another process a moment ago: look again
            except nats.js.errors.APIError as exc:
                raise StreamUnavailable(
                    f"NATS at {self.url} cannot make the JetStream stream {name} with "
                    f"{self.replicas} replica(s): {exc.description or exc}; set "
                    "EXDESK_STREAM_REPLICAS to at most the number of servers in the cluster"
                ) from exc
        raise StreamUnavailable(f"NATS at {self.url}: cannot make the JetStream stream {name}")

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # --- publishing ----------------------------------------------------------------------

    def publish(self, events: Sequence[Outgoing]) -> list[Published]:
        from service.streams import message_id

        async def send() -> list[Published]:
            pending: list[asyncio.Future[Any]] = []
            for event in events:
                subject = f"{self.subject}.{partition_of(event.world_id, event.order_id)}"
                headers = {"Nats-Msg-Id": message_id(event.body)}
                pending.append(
                    await self._js.publish_async(
                        subject, event.body, stream=self.name, headers=headers, wait_stall=30
                    )
                )
                if len(pending) % IN_FLIGHT == 0:
                    await asyncio.gather(*pending[-IN_FLIGHT:])
            acks = await asyncio.gather(*pending)
            return [Published(seq=a.seq, duplicate=bool(a.duplicate)) for a in acks]

        return self._call(send(), CALL_TIMEOUT_S + len(events) / 100)

    # --- consuming -----------------------------------------------------------------------

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            self._sub = await self._js.pull_subscribe(
                f"{self.subject}.*",
                durable=self.consumer,
                stream=self.name,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait_s,
                    max_deliver=-1,
                    max_ack_pending=20_000,
                ),
            )
        return self._sub

    def fetch(self, n: int, timeout: float) -> list[Delivery]:
        """At most ``n`` events, waiting up to ``timeout`` seconds for the first.

        nats-py may hand over more than asked: a pull request of an earlier fetch that timed
        out on this side still gets its messages, which wait in the subscription and come
        with the next fetch. Those beyond ``n`` stay held here (kept in progress, so NATS
        redelivers them to nobody else) and come first next time, so that a worker never
        holds more than its batch plus what is already its own."""

        async def get() -> list[Msg]:
            sub = await self._subscription()
            try:
                return list(await sub.fetch(batch=n, timeout=timeout))
            # nats-py raises its own TimeoutError, FetchTimeoutError, or asyncio's plain one
            # (the same class as the builtin): all mean nothing came in time
            except TimeoutError:
                return []

        msgs = self._early or self._call(get(), timeout + CALL_TIMEOUT_S)
        msgs, self._early = msgs[:n], msgs[n:]
        for msg in self._early:
            self._held[msg.metadata.sequence.stream] = msg
        out = []
        for msg in msgs:
            meta = msg.metadata
            self._held[meta.sequence.stream] = msg
            out.append(
                Delivery(
                    data=msg.data,
                    seq=meta.sequence.stream,
                    attempt=meta.num_delivered,
                    published_at=meta.timestamp.astimezone(UTC),
                    handle=msg,
                )
            )
        return out

    async def _keep_held(self) -> None:
        """While this process lives, the events it holds stay its own."""
        while True:
            await asyncio.sleep(max(self.ack_wait_s / 3, 0.2))
            for msg in list(self._held.values()):
                with contextlib.suppress(Exception):  # NATS away: the next round tries again
                    await msg.in_progress()

    def _release(self, delivery: Delivery) -> None:
        self._held.pop(delivery.seq, None)

    def ack(self, delivery: Delivery) -> bool:
        """Whether NATS confirmed it. An ack lost (NATS restarting) means a redelivery, which
        replays what is done already."""
        msg: Msg = delivery.handle
        try:
            self._call(msg.ack_sync(timeout=5.0))
            return True
        except StreamUnavailable:
            return False
        finally:
            self._release(delivery)

    def retry(self, delivery: Delivery, delay: float) -> None:
        msg: Msg = delivery.handle
        try:
            self._call(msg.nak(delay=delay or None))
        except StreamUnavailable:
            pass  # not handed back: JetStream redelivers it after ack_wait
        finally:
            self._release(delivery)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Put the event on the dead-letter subject, then ack it (a crash between the two
        dead-letters it again under the same message id, which NATS stores once)."""
        headers = {
            "Nats-Msg-Id": f"dead-{self.name}-{delivery.seq}",
            "Exdesk-Reason": reason.replace("\r", " ").replace("\n", " ")[:2000],
            "Exdesk-Attempts": str(delivery.attempt),
            "Exdesk-Stream": self.name,
            "Exdesk-Seq": str(delivery.seq),
            "Exdesk-Dead-At": datetime.now(UTC).isoformat(),
        }
        self._call(
            self._js.publish(
                self.dead_subject, delivery.data, stream=self.dead_name, headers=headers
            )
        )
        self.ack(delivery)

    def dead_letters(self, limit: int) -> list[tuple[int, str, bytes]]:
        """(original position, reason, event) of the first ``limit`` dead letters."""

        async def read() -> list[tuple[int, str, bytes]]:
            info = await self._js.stream_info(self.dead_name)
            out = []
            first, last = info.state.first_seq, info.state.last_seq
            for seq in range(first, min(last, first + limit - 1) + 1):
                try:
                    raw = await self._js.get_msg(self.dead_name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                headers = raw.headers or {}
                out.append(
                    (
                        int(headers.get("Exdesk-Seq", 0)),
                        str(headers.get("Exdesk-Reason", "")),
                        raw.data or b"",
                    )
                )
            return out

        return self._call(read())

    def close(self) -> None:
        """Hand back what this process still holds, and disconnect."""

        async def shut() -> None:
            self._keeper.cancel()
            for msg in list(self._held.values()):
                with contextlib.suppress(Exception):  # NATS away: redelivered after ack_wait
                    await msg.nak()
            self._held.clear()
            self._early = []
            with contextlib.suppress(Exception):  # closing anyway
                await asyncio.wait_for(self._nc.close(), 5)

        try:
            self._call(shut(), 15)
        except StreamUnavailable:
            pass
        finally:
            self._stop_loop()
