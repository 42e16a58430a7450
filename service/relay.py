"""The relay: publishes the events outbox to the configured sinks, at least once.

A round claims due rows (``store.events.Outbox.claim``), sends each to every sink (a try that
may help again is retried with exponential backoff and full jitter, a bounded number of
times), and marks the ones every sink took as sent. An event still refused waits (longer
after each failed round) and the round stops there, giving back the rest of its claim. A
relay killed between a publish and its mark leaves a claim that runs out after the lease;
the next round publishes those events again, with the same ids. Any number of relays may
run at once (``exdesk events relay``, ``exdesk serve``); none loses an event.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.settings import Settings
from store.events import Outbox, OutboxRow
from tools.event_sinks import EventSink, NatsSink, SinkError, WebhookSink

log = logging.getLogger(__name__)
_MARK_EVERY = 20  # published events marked sent together


def sinks_for(
    settings: Settings, *, nats_url: str | None = None, webhook_url: str | None = None
) -> list[EventSink]:
    """The sinks the settings (or these overrides) name; none when none is set."""
    nats_url = nats_url or settings.events_nats_url
    webhook_url = webhook_url or settings.events_webhook_url
    sinks: list[EventSink] = []
    if webhook_url:
        secret = settings.events_webhook_secret or ""
        sinks.append(WebhookSink(webhook_url, secret, timeout_s=settings.events_timeout_s))
    if nats_url:
        sinks.append(
            NatsSink(
                nats_url,
                subject=settings.events_subject,
                stream=settings.events_stream,
                timeout_s=settings.events_timeout_s,
                replicas=settings.events_replicas,
            )
        )
    return sinks


@dataclass
class Round:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    error: str | None = None  # the last failure, as the outbox records it


@dataclass
class Totals:
    sent: int = 0
    failed: int = 0
    rounds: int = 0
    errors: list[str] | None = None


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        sinks: Sequence[EventSink],
        *,
        batch: int,
        lease_s: float,
        tries: int,
        backoff_s: float,
        backoff_max_s: float,
        stop: threading.Event | None = None,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if not sinks:
            raise SinkError(
                "no place to send events to: set EXDESK_EVENTS_NATS_URL and/or "
                "EXDESK_EVENTS_WEBHOOK_URL (with EXDESK_EVENTS_WEBHOOK_SECRET)",
                retryable=False,
            )
        self.name = f"relay-{uuid.uuid4().hex[:12]}"
        self._outbox, self._sinks = outbox, list(sinks)
        self._batch, self._lease = batch, lease_s
        self._tries, self._backoff, self._cap = tries, backoff_s, backoff_max_s
        self.stop = stop or threading.Event()
        self._fraction = random_fraction

    @classmethod
    def from_settings(cls, outbox: Outbox, settings: Settings, sinks: Sequence[EventSink]) -> Relay:
        return cls(
            outbox,
            sinks,
            batch=settings.events_batch,
            lease_s=settings.events_lease_s,
            tries=settings.events_tries,
            backoff_s=settings.events_backoff_s,
            backoff_max_s=settings.events_backoff_max_s,
        )

    def _delay(self, attempt: int) -> float:
        """Full jitter: a random wait up to backoff × 2^attempt, at most the cap."""
        return self._fraction() * min(self._cap, self._backoff * (2**attempt))

    def _send(self, row: OutboxRow) -> None:
        """Every sink takes the event, or SinkError after the last try."""
        body = row.body.encode("utf-8")
        for sink in self._sinks:
            for attempt in range(self._tries):
                try:
                    sink.send(row.event_id, row.type, body)
                    break
                except SinkError as exc:
                    last = attempt + 1 == self._tries
                    if not exc.retryable or last or self.stop.is_set():
                        raise
                    log.info("%s: %s (try %d of %d)", row.event_id, exc, attempt + 1, self._tries)
                    if self.stop.wait(self._delay(attempt)):
                        raise

    def round(self) -> Round:
        """Publish what is due now, up to one batch."""
        done = Round()
        if self.stop.is_set():
            return done
        started = time.monotonic()
        rows = self._outbox.claim(self.name, limit=self._batch, lease_s=self._lease)
        done.claimed = len(rows)
        sent: list[str] = []
        try:
            for n, row in enumerate(rows):
                # stop before the claim could run out under us (another relay would take it)
                if self.stop.is_set() or time.monotonic() - started > self._lease / 2:
                    self._outbox.release(self.name, [r.event_id for r in rows[n:]])
                    break
                try:
                    self._send(row)
                except SinkError as exc:
                    wait = max(1.0, min(self._cap, self._backoff * 2 ** min(row.attempts, 16)))
                    retry_at = datetime.now(UTC) + timedelta(seconds=wait)
                    self._outbox.failed(self.name, row.event_id, str(exc), retry_at)
                    self._outbox.release(self.name, [r.event_id for r in rows[n + 1 :]])
                    done.failed, done.error = 1, str(exc)
                    break
                sent.append(row.event_id)
                if len(sent) >= _MARK_EVERY:
                    done.sent += self._outbox.mark_sent(self.name, sent)
                    sent = []
        finally:
            done.sent += self._outbox.mark_sent(self.name, sent)
        return done

    def drain(self) -> Totals:
        """Rounds until nothing is due (``exdesk events relay --once``); stops at a failure."""
        totals = Totals(errors=[])
        while not self.stop.is_set():
            done = self.round()
            totals.rounds += 1
            totals.sent += done.sent
            totals.failed += done.failed
            if done.error and totals.errors is not None:
                totals.errors.append(done.error)
            if done.claimed == 0 or done.failed:
                break
        return totals

    def run(self, poll_s: float) -> Totals:
        """Rounds until ``stop`` is set, waiting ``poll_s`` when idle or after a failure."""
        totals = Totals(errors=[])
        while not self.stop.is_set():
            try:
                done = self.round()
            except Exception as exc:  # the database is away: say so, wait, go on
                log.warning("events relay: %s", exc)
                self.stop.wait(poll_s)
                continue
            totals.rounds += 1
            totals.sent += done.sent
            totals.failed += done.failed
            if done.error:
                log.warning("events relay: %s", done.error)
            if done.claimed == 0 or done.failed:
                self.stop.wait(poll_s)
        return totals

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


class RelayThread:
    """The relay in the background of a long-lived process (``exdesk serve``)."""

    def __init__(self, relay: Relay, poll_s: float) -> None:
        self._relay, self._poll = relay, poll_s
        self._thread = threading.Thread(target=self._loop, name="exdesk-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        try:
            self._relay.run(self._poll)
        finally:
            self._relay.close()

    def stop(self) -> None:
        self._relay.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
