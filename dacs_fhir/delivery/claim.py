"""The right to send one destination's queue: one sender at a time, whatever the number of workers and hosts.

PostgreSQL: the sender holds the row lock of the destination's ``outbox_lease`` row (``SELECT … FOR
UPDATE SKIP LOCKED``) in a transaction on a connection of its own for as long as it sends; another
sender skips the locked row and leaves the queue to it, and the lock goes with the connection when
the sender's process dies. The sender reads the queue's head on that connection, so a lost
connection stops it before it sends; the outcome of each attempt is committed on another.

SQLite (one host): the write transaction serialises taking a lease that lasts ``seconds`` and is
renewed while sending; a lease left by a process of this host that no longer runs is taken over at
once, one of another owner waits until it runs out.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ..store.models import outbox_lease as L

if TYPE_CHECKING:
    from .outbox import OutboundMessage, Outbox

HOST = socket.gethostname()


def owner_id() -> str:
    return f"{HOST}:{os.getpid()}:{threading.get_ident()}"


class Claim:
    """A held claim on a destination's queue: reads its head while the claim holds."""

    def __init__(self, outbox: "Outbox", destination: str, conn: Optional[Connection] = None,
                 owner: str = "", seconds: float = 0.0):
        self.outbox, self.destination = outbox, destination
        self.conn = conn  # PostgreSQL: the connection whose transaction holds the row lock
        self.owner, self.seconds = owner, seconds
        self.renew_at = time.time() + seconds / 2

    def head(self) -> Optional["OutboundMessage"]:
        """The oldest pending message; LostClaim when the claim no longer holds."""
        if self.conn is None and time.time() > self.renew_at:  # SQLite: renew well before the lease runs out
            if not _take_lease(self.outbox, self.destination, self.owner, self.seconds):
                raise LostClaim(self.destination)
            self.renew_at = time.time() + self.seconds / 2
        return self.outbox.head(self.destination, self.conn)


class LostClaim(Exception):
    """Another sender has taken the queue (a SQLite lease that ran out while this one was stalled)."""


@contextmanager
def claim_for(outbox: "Outbox", destination: str, owner: str, seconds: float) -> Iterator[Optional[Claim]]:
    if outbox.engine.dialect.name == "postgresql":
        with _row_lock(outbox, destination) as conn:
            yield None if conn is None else Claim(outbox, destination, conn)
        return
    if not _take_lease(outbox, destination, owner, seconds):
        yield None
        return
    try:
        yield Claim(outbox, destination, owner=owner, seconds=seconds)
    finally:
        with outbox.engine.begin() as conn:
            conn.execute(update(L).where(L.c.destination == destination, L.c.owner == owner).values(until=0.0))


@contextmanager
def _row_lock(outbox: "Outbox", destination: str) -> Iterator[Optional[Connection]]:
    conn = outbox.engine.connect()
    try:
        conn.begin()
        held = conn.execute(select(L.c.destination).where(L.c.destination == destination)
                            .with_for_update(skip_locked=True)).first()
        yield conn if held is not None else None
    finally:
        try:
            conn.rollback()  # ends the transaction: releases the lock (it wrote nothing)
        finally:
            conn.close()


def _take_lease(outbox: "Outbox", destination: str, owner: str, seconds: float) -> bool:
    now = time.time()
    with outbox.engine.begin() as conn:  # BEGIN IMMEDIATE: lease holders are decided one at a time
        row = conn.execute(select(L.c.owner, L.c.until).where(L.c.destination == destination)).first()
        if row is not None and row.owner != owner and row.until > now and _running(row.owner):
            return False
        conn.execute(update(L).where(L.c.destination == destination).values(owner=owner, until=now + seconds))
        return True


def _running(owner: str) -> bool:
    """False for an owner that was a process of this host which no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return True
    if int(pid) == os.getpid():
        return True  # another thread of this process
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
