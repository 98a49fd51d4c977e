"""Sending a destination's queue in order: :func:`drain`, and :class:`Pumps` that run it.

:func:`drain` claims the queue (one sender at a time, see :mod:`.claim`), sends the oldest pending
message, waits for the ACK, records the outcome, and goes on until the queue is empty or its head
must wait for a retry. It returns the seconds until that retry is due, and the caller runs it again
then: :class:`Pumps` hands that to the ``schedule`` it was given (a task queue), or without one
keeps a daemon thread per destination that sleeps until then or until :meth:`Pumps.kick` wakes it
for a new message. This module knows no task queue: the composition root injects ``schedule``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from .claim import LostClaim, owner_id
from .destinations import DeliveryError, parse, sender_for
from .outbox import PARKED, Outbox

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # SQLite lease; renewed at half-time while sending
HOLD_SECONDS = 30.0  # a sender lets go of a busy queue this often (bounds a PostgreSQL lock transaction)
IDLE_POLL = 5.0  # an idle thread looks again this often (messages queued by another process)


def drain(outbox: Outbox, url: str, sender=None, max_messages: Optional[int] = None) -> Optional[float]:
    """Send ``url``'s queue in order; returns seconds until the head is due again (0: run again now),
    None when the queue is empty or another sender holds it (that sender sends what is queued)."""
    wait = _head_wait(outbox, url)  # a read: an idle queue is not claimed (a write on SQLite)
    if wait is None or wait > 0:
        return wait
    dest = parse(url)
    lease = max(LEASE_SECONDS, dest.timeout * 3)  # a send may take a connect and a read timeout
    own_sender = sender is None
    sender = sender or sender_for(dest)
    try:
        while True:
            with outbox.claim(url, owner_id(), lease) as claim:
                if claim is None:
                    return None
                delay = _send_queue(outbox, claim, dest, sender, max_messages)
            if delay is None:  # a message committed while the claim was let go, whose wake-up found it held
                delay = _head_wait(outbox, url)
                if delay == 0:
                    continue
            return delay
    except LostClaim:
        log.warning("sending %s stopped: another sender took the queue", url)
        return None
    finally:
        if own_sender:
            sender.close()


def _send_queue(outbox: Outbox, claim, dest, sender, max_messages: Optional[int]) -> Optional[float]:
    url = dest.url
    sent = 0
    until = time.time() + HOLD_SECONDS
    while max_messages is None or sent < max_messages:
        if time.time() > until:
            return 0.0
        msg = claim.head()
        if msg is None:
            return None
        wait = msg.next_attempt - time.time()
        if wait > 0:
            return wait
        payload = msg.payload or _build(outbox, msg, dest)
        if payload is None:
            continue
        try:
            sender.send(payload)
        except DeliveryError as err:
            attempts = msg.attempts + 1
            retry_at = None if err.permanent or attempts >= dest.attempts else time.time() + dest.retry_delay(attempts)
            status = outbox.mark_failed(msg.id, str(err), retry_at)
            if status == PARKED:
                log.warning("outbound message %s to %s parked after %d attempts: %s", msg.id, url, attempts, err)
            else:
                log.info("outbound message %s to %s failed (attempt %d): %s", msg.id, url, attempts, err)
            continue
        outbox.mark_sent(msg.id)  # committed before anything else: never sent twice after an AA
        sent += 1
    return 0.0


def _build(outbox: Outbox, msg, dest) -> Optional[bytes]:
    """The payload of a message queued with its result, built and kept before its first attempt
    (None, the message parked, when the result cannot be mapped to what the destination speaks)."""
    import json

    from ..mappers import report_json
    from .payloads import payload_for

    try:
        payload = payload_for(dest, report_json.load(json.loads(msg.report or "null")), msg.corrected)
    except Exception as exc:  # noqa: BLE001 - what cannot be built now never will be: parked, not retried
        outbox.mark_failed(msg.id, f"cannot build the message: {exc}", None)
        log.warning("outbound message %s to %s parked: cannot build it (%s)", msg.id, dest.url, type(exc).__name__)
        return None
    outbox.keep_payload(msg.id, payload)
    return payload


def _head_wait(outbox: Outbox, url: str) -> Optional[float]:
    """Seconds until the queue's head is due (0: now), None when the queue is empty."""
    head = outbox.head(url)
    return None if head is None else max(head.next_attempt - time.time(), 0.0)


class _Thread:
    """A daemon thread that drains one destination, woken by :meth:`kick` or by its retry time."""

    def __init__(self, outbox: Outbox, url: str):
        self.outbox, self.url = outbox, url
        self._wake = threading.Event()
        self._stop = False
        self.thread = threading.Thread(target=self._run, name=f"deliver-{parse(url).host}", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop:
            self._wake.clear()
            try:
                delay = drain(self.outbox, self.url)
            except Exception:  # noqa: BLE001 - a broken queue must not end the thread
                log.exception("delivery to %s failed", self.url)
                delay = IDLE_POLL
            if delay == 0:
                continue
            # idle: look again now and then (a message queued by another process, a lock let go)
            self._wake.wait(IDLE_POLL if delay is None else min(delay, IDLE_POLL))


Schedule = Callable[[str, float], None]  # (destination URL, countdown seconds): run drain for it then


class Pumps:
    """The senders of one outbox: ``schedule(url, countdown)`` when given (a task queue whose task
    calls :func:`drain` and schedules itself again after the delay it returns), else a thread per
    destination in this process."""

    def __init__(self, outbox: Outbox, schedule: Optional[Schedule] = None):
        self.outbox = outbox
        self.schedule = schedule
        self._threads: dict[str, _Thread] = {}
        self._lock = threading.Lock()

    def kick(self, url: str) -> None:
        """Make sure ``url``'s queue is being sent (a wake-up: the messages are already queued)."""
        if self.schedule is not None:
            self.schedule(url, 0.0)
            return
        with self._lock:
            pump = self._threads.get(url)
            if pump is None or not pump.thread.is_alive():
                pump = self._threads[url] = _Thread(self.outbox, url)
        pump.kick()

    def resume(self, configured=()) -> list[str]:
        """Start sending every configured destination and every queue with pending messages (at start-up)."""
        from .outbox import pending_urls

        urls = pending_urls(self.outbox, configured)
        for url in urls:
            self.kick(url)
        return urls

    def stop(self) -> None:
        """Stop the threads (shutdown, tests)."""
        with self._lock:
            threads = list(self._threads.values())
            self._threads.clear()
        for pump in threads:
            pump.stop()
