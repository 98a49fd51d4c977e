"""Sending a destination's queue in order: the Celery task and its in-process runner.

:func:`drain` sends the oldest pending message, waits for the ACK, records the
outcome, and goes on until the queue is empty or its head must wait for a
retry. It returns the seconds until that retry is due, and the caller schedules
the next run then: the Celery task re-queues itself with that countdown; without
a broker a daemon thread per destination sleeps until then or until
:func:`kick` wakes it for a new message.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from .destinations import DeliveryError, parse, sender_for
from .outbox import PARKED, Outbox, owner_id

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
IDLE_POLL = 5.0


def drain(outbox: Outbox, url: str, sender=None, max_messages: Optional[int] = None) -> Optional[float]:
    """Send ``url``'s queue in order; returns seconds until the head is due again, None when empty."""
    dest = parse(url)
    owner = owner_id()
    lease = max(LEASE_SECONDS, dest.timeout * 2)
    if not outbox.acquire(url, owner, lease):
        return lease / 2  # another worker is sending this queue
    renew_at = time.time() + lease / 2
    own_sender = sender is None
    sender = sender or sender_for(dest)
    sent = 0
    try:
        while max_messages is None or sent < max_messages:
            msg = outbox.head(url)
            if msg is None:
                return None
            wait = msg.next_attempt - time.time()
            if wait > 0:
                return wait
            if time.time() > renew_at:  # renew well before it runs out (one commit, not one per message)
                if not outbox.acquire(url, owner, lease):
                    return lease / 2
                renew_at = time.time() + lease / 2
            try:
                sender.send(msg.payload)
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
    finally:
        if own_sender:
            sender.close()
        outbox.release(url, owner)


# ---- in-process (no broker)
class LocalPump:
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
                delay = 5.0
            # idle: look again now and then (a message re-queued by another process)
            self._wake.wait(IDLE_POLL if delay is None else min(delay, IDLE_POLL))


_pumps: dict[tuple[str, str], LocalPump] = {}
_pumps_lock = threading.Lock()


def kick(settings, url: str, outbox: Optional[Outbox] = None, schedule: Optional[Callable[[str], None]] = None) -> None:
    """Make sure ``url``'s queue is being sent: by ``schedule(url)`` (the task layer's, with a broker),
    else by a local thread."""
    if settings.broker_url and schedule is not None:
        schedule(url)
        return
    key = (str(settings.data_dir), url)
    with _pumps_lock:
        pump = _pumps.get(key)
        if pump is None or not pump.thread.is_alive():
            pump = _pumps[key] = LocalPump(outbox or Outbox.for_settings(settings), url)
    pump.kick()


def stop_local_pumps() -> None:
    """Stop the in-process senders (shutdown, tests)."""
    with _pumps_lock:
        pumps = list(_pumps.values())
        _pumps.clear()
    for pump in pumps:
        pump.stop()
