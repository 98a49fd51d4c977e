"""The durable outbound queue: one ordered queue per destination, in the store's database.

A result's messages are written by :func:`insert_messages` inside the transaction that records the
result (``Pipeline.ingest_report``): a result is committed with its messages or not at all, and
workers on every host send from the same queues. A message is ``pending`` until its destination
acknowledges it (``sent``, committed in its own transaction before anything else happens, so an
acknowledged message is never sent again), or until it has failed ``max_attempts`` times
(``parked``: kept, listed, put back in the queue by :meth:`Outbox.replay`). A message queued with
its result (``report``) has its payload built once, before its first attempt, and kept: every
attempt sends the same bytes, and what was acknowledged is exactly what is stored.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Iterable, Iterator, Optional

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ..store.models import outbox_lease as L, outbox_message as M
from ..store.raw import Statement
from .claim import Claim, claim_for

log = logging.getLogger(__name__)

PENDING, SENT, PARKED, REPLAYED = "pending", "sent", "parked", "replayed"

_COLUMNS = ("id", "destination", "key", "content_type", "payload", "status", "attempts", "next_attempt",
            "last_error", "created", "sent", "report", "corrected")
_INSERT_KEYS = ["destination", "key", "content_type", "report", "corrected", "payload", "status", "attempts",
                "next_attempt", "last_error", "created"]


@dataclass
class OutboundMessage:
    id: int
    destination: str
    key: Optional[str]
    content_type: str
    payload: bytes  # b"" until built from ``report`` (before the first attempt)
    status: str
    attempts: int
    next_attempt: float
    last_error: str
    created: float
    sent: Optional[float]
    report: Optional[str] = None  # the result it carries (report_json form), when queued from one
    corrected: bool = False  # HL7 OBR-25 "C": a correction of a result sent before

    @classmethod
    def of(cls, row) -> "OutboundMessage":
        values = dict(zip(_COLUMNS, row, strict=True))
        values["payload"] = bytes(values["payload"] or b"")
        values["corrected"] = bool(values["corrected"])
        return cls(**values)


def message_row(destination: str, content_type: str, key: Optional[str] = None, payload: Optional[bytes] = None,
                report: Optional[str] = None, corrected: bool = False) -> dict:
    """An ``outbox_message`` row to insert: a built ``payload``, or the ``report`` to build it from."""
    return dict(destination=destination, key=key, content_type=content_type, report=report, corrected=corrected,
                payload=payload, status=PENDING, attempts=0, next_attempt=0.0, last_error="", created=time.time())


_INSERT_IGNORING = {  # a key already queued for a destination is not queued again
    name: Statement(dialect.insert(M).on_conflict_do_nothing(index_elements=["destination", "key"]), _INSERT_KEYS)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def insert_messages(conn: Connection, rows: list[dict]) -> None:
    """Queue ``rows`` (see :func:`message_row`) in the caller's transaction (one statement, prepared once)."""
    if rows:
        _INSERT_IGNORING[conn.dialect.name].executemany(conn, rows)


class Outbox:
    """Store-and-forward queues of outbound messages, ordered per destination (``Outbox(store)``)."""

    def __init__(self, store, owns_store: bool = False):
        self.store = store
        self.engine: Engine = getattr(store, "engine", store)  # a Store, or an Engine
        self._owns_store = owns_store
        self._leases: set[str] = set()  # destinations whose lease row is known to exist

    @classmethod
    def for_settings(cls, settings) -> "Outbox":
        """The outbox in ``settings.database_url`` (migrated), with any pending rows of the outbox file
        kept in the data folder before the outbox moved into the database."""
        from ..store import Store

        store = Store(settings.database_url)
        store.upgrade()
        outbox = cls(store, owns_store=True)
        outbox.import_file(Path(settings.data_dir) / "outbox.sqlite")
        return outbox

    def _select(self):
        return select(*(M.c[name] for name in _COLUMNS))

    # ---- producers
    def enqueue(self, destination: str, payload: bytes, content_type: str, key: Optional[str] = None) -> Optional[int]:
        """Append a built message to ``destination``'s queue; None when ``key`` was queued there already."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = (dialect.insert(M).values(**message_row(destination, content_type, key, payload=payload))
                .on_conflict_do_nothing(index_elements=["destination", "key"]).returning(M.c.id))
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar()

    # ---- the sender
    def claim(self, destination: str, owner: str, seconds: float) -> ContextManager[Optional[Claim]]:
        """The right to send ``destination``'s queue (a context manager: a held claim, or None when
        another sender holds it); ``seconds``: how long a SQLite lease lasts unless renewed."""
        if destination not in self._leases:
            self._ensure_lease_row(destination)
            self._leases.add(destination)
        return claim_for(self, destination, owner, seconds)

    def _ensure_lease_row(self, destination: str) -> None:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        with self.engine.begin() as conn:
            row = dialect.insert(L).values(destination=destination, owner="", until=0.0)
            conn.execute(row.on_conflict_do_nothing())

    def head(self, destination: str, conn: Optional[Connection] = None) -> Optional[OutboundMessage]:
        """The oldest pending message of ``destination`` (due or not: order is kept)."""
        if conn is not None:
            row = _HEAD.execute(conn, {"destination": destination}).fetchone()
        else:
            with self.engine.connect() as own:  # SQLite: read outside a (write) transaction
                row = _HEAD.execute(own, {"destination": destination}).fetchone()
        return OutboundMessage.of(row) if row else None

    def keep_payload(self, message_id: int, payload: bytes) -> None:
        """Keep the payload built for a message, before its first attempt (every attempt sends it)."""
        self._update(_KEEP_PAYLOAD, id=message_id, payload=payload)

    def mark_sent(self, message_id: int) -> None:
        self._update(_MARK_SENT, id=message_id, sent=time.time())

    def mark_failed(self, message_id: int, error: str, retry_at: Optional[float]) -> str:
        """Record a failed attempt: retry at ``retry_at``, or park when it is None. Returns the new status."""
        status = PENDING if retry_at is not None else PARKED
        self._update(_MARK_FAILED, id=message_id, status=status, next_attempt=retry_at or 0.0, last_error=error[:500])
        return status

    def _update(self, stmt: Statement, **values) -> None:
        with self.engine.begin() as conn:  # committed before the caller goes on
            stmt.execute(conn, values)

    # ---- operators
    def get(self, message_id: int) -> OutboundMessage:
        with self.engine.connect() as conn:
            row = conn.execute(self._select().where(M.c.id == message_id)).first()
        if row is None:
            raise KeyError(message_id)
        return OutboundMessage.of(row)

    def destinations(self) -> list[str]:
        """Destinations with pending messages."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(M.c.destination).where(M.c.status == PENDING).distinct()).scalars())

    def counts(self) -> dict[str, int]:
        """Messages per status."""
        with self.engine.connect() as conn:
            return dict(conn.execute(select(M.c.status, func.count()).group_by(M.c.status)).fetchall())

    def list(self, status: Optional[str] = None, destination: Optional[str] = None,
             limit: int = 1000) -> Iterator[OutboundMessage]:
        stmt = self._select()
        if status:
            stmt = stmt.where(M.c.status == status)
        if destination:
            stmt = stmt.where(M.c.destination == destination)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(M.c.id).limit(limit)).fetchall()
        for row in rows:
            yield OutboundMessage.of(row)

    def replay(self, message_id: int) -> OutboundMessage:
        """Queue a parked message again, as a new message at the end of its destination's queue.

        A new row keeps the order of what was acknowledged meaningful; the parked row stays as
        history with status ``parked``→``replayed``. A pending message is made due now.
        """
        old = self.get(message_id)
        if old.status == SENT:
            raise ValueError(f"outbound message {message_id} was acknowledged; it is not sent again "
                             "(resend --study queues its study's result anew)")
        if old.status == REPLAYED:
            raise ValueError(f"outbound message {message_id} was queued again already")
        with self.engine.begin() as conn:
            if old.status == PARKED:
                conn.execute(update(M).where(M.c.id == message_id).values(status=REPLAYED))
                insert_messages(conn, [message_row(old.destination, old.content_type, None, old.payload or None,
                                                   old.report, old.corrected)])
            else:
                conn.execute(update(M).where(M.c.id == message_id).values(next_attempt=0.0))
        return self.get(message_id)

    def import_file(self, path: Path) -> int:
        """Queue the pending and parked messages of an outbox file (``DATA_DIR/outbox.sqlite``, where
        the queue was kept before it moved into the database), then rename the file ``*.imported``."""
        importing = path.with_name(path.name + ".importing")
        if path.is_file():
            try:  # its WAL (left by a process that may have crashed) into the file itself, WAL removed
                src = sqlite3.connect(path, timeout=30)
                src.execute("PRAGMA journal_mode=DELETE")
                src.close()
                path.rename(importing)  # one process imports it (serve and workers start together)
            except FileNotFoundError:
                pass
            except sqlite3.DatabaseError:
                log.warning("outbox file %s is not readable; left in place", path)
                return 0
        if not importing.is_file():
            return 0
        src = sqlite3.connect(importing)
        try:
            rows = src.execute("SELECT destination, key, content_type, payload, status, attempts, last_error, created "
                               "FROM message WHERE status IN ('pending', 'parked') ORDER BY id").fetchall()
        except sqlite3.DatabaseError:
            log.warning("outbox file %s is not readable; left in place", path)
            return 0
        finally:
            src.close()
        queued = [dict(message_row(dest, ctype, key, payload=bytes(payload)), status=status, attempts=attempts,
                       last_error=error, created=created)
                  for dest, key, ctype, payload, status, attempts, error, created in rows]
        with self.engine.begin() as conn:
            insert_messages(conn, queued)
        importing.rename(path.with_name(path.name + ".imported"))
        log.info("queued %d messages of %s in the database outbox", len(queued), path)
        return len(queued)

    def close(self) -> None:
        """Release the database connections when this outbox made its own store."""
        if self._owns_store:
            self.store.dispose()


# the sender's statements, run on the DBAPI cursor (store/raw.py): one per message sent
_HEAD = Statement(select(*(M.c[name] for name in _COLUMNS))
                  .where(M.c.destination == bindparam("destination"), M.c.status == PENDING)
                  .order_by(M.c.id).limit(1))
_KEEP_PAYLOAD = Statement(update(M).where(M.c.id == bindparam("id")).values(payload=bindparam("payload")))
_MARK_SENT = Statement(update(M).where(M.c.id == bindparam("id")).values(
    status=SENT, sent=bindparam("sent"), attempts=M.c.attempts + 1, last_error=""))
_MARK_FAILED = Statement(update(M).where(M.c.id == bindparam("id")).values(
    status=bindparam("status"), attempts=M.c.attempts + 1, next_attempt=bindparam("next_attempt"),
    last_error=bindparam("last_error")))


def pending_urls(outbox: Outbox, configured: Iterable[str] = ()) -> list[str]:
    """Configured destinations and every destination with pending messages."""
    return sorted(set(configured) | set(outbox.destinations()))
