"""The durable outbound queue: one ordered queue per destination in ``DATA_DIR/outbox.sqlite``.

A message is ``pending`` until its destination acknowledges it (``sent``, recorded
and committed before anything else happens, so an acknowledged message is never
sent again), or until it has failed ``max_attempts`` times (``parked``: kept,
listed, and put back in the queue by :meth:`Outbox.replay`). A lease per
destination keeps a second worker from sending the same queue at the same time.
SQLite in WAL mode with full sync is durable across crashes and shared by the
processes of one host.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

PENDING, SENT, PARKED, REPLAYED = "pending", "sent", "parked", "replayed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    key TEXT,
    content_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    sent REAL
);
CREATE INDEX IF NOT EXISTS message_queue ON message (destination, status, id);
CREATE UNIQUE INDEX IF NOT EXISTS message_key ON message (destination, key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS lease (destination TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
"""


@dataclass
class OutboundMessage:
    id: int
    destination: str
    key: Optional[str]
    content_type: str
    payload: bytes
    status: str
    attempts: int
    next_attempt: float
    last_error: str
    created: float
    sent: Optional[float]


class Outbox:
    """Store-and-forward queues of outbound messages, ordered per destination."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(_SCHEMA)

    @classmethod
    def for_settings(cls, settings) -> "Outbox":
        return cls(Path(settings.data_dir) / "outbox.sqlite")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> "Outbox._Tx":
        return Outbox._Tx(self._db())

    # ---- producers
    def enqueue(self, destination: str, payload: bytes, content_type: str, key: Optional[str] = None) -> Optional[int]:
        """Append a message to ``destination``'s queue; None when ``key`` was queued there already."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO message (destination, key, content_type, payload, created) VALUES (?, ?, ?, ?, ?)",
                (destination, key, content_type, payload, time.time()),
            )
            return cur.lastrowid if cur.rowcount else None

    # ---- the sender
    def head(self, destination: str) -> Optional[OutboundMessage]:
        """The oldest pending message of ``destination`` (due or not: order is kept)."""
        row = self._db().execute(
            "SELECT * FROM message WHERE destination = ? AND status = 'pending' ORDER BY id LIMIT 1", (destination,)
        ).fetchone()
        return OutboundMessage(**dict(row)) if row else None

    def mark_sent(self, message_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE message SET status = 'sent', sent = ?, attempts = attempts + 1, last_error = '' WHERE id = ?", (time.time(), message_id))

    def mark_failed(self, message_id: int, error: str, retry_at: Optional[float]) -> str:
        """Record a failed attempt: retry at ``retry_at``, or park when it is None. Returns the new status."""
        status = PENDING if retry_at is not None else PARKED
        with self._tx() as db:
            db.execute(
                "UPDATE message SET status = ?, attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?",
                (status, retry_at or 0, error[:500], message_id),
            )
        return status

    def acquire(self, destination: str, owner: str, seconds: float) -> bool:
        """Take (or renew) the sending lease of ``destination`` for ``seconds``."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT owner, until FROM lease WHERE destination = ?", (destination,)).fetchone()
            if row and row["owner"] != owner and row["until"] > now:
                return False
            db.execute("INSERT OR REPLACE INTO lease (destination, owner, until) VALUES (?, ?, ?)", (destination, owner, now + seconds))
            return True

    def release(self, destination: str, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM lease WHERE destination = ? AND owner = ?", (destination, owner))

    # ---- operators
    def get(self, message_id: int) -> OutboundMessage:
        row = self._db().execute("SELECT * FROM message WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise KeyError(message_id)
        return OutboundMessage(**dict(row))

    def list(self, status: Optional[str] = None, destination: Optional[str] = None, limit: int = 1000) -> Iterator[OutboundMessage]:
        sql, args = "SELECT * FROM message WHERE 1 = 1", []
        if status:
            sql, args = sql + " AND status = ?", args + [status]
        if destination:
            sql, args = sql + " AND destination = ?", args + [destination]
        for row in self._db().execute(sql + " ORDER BY id LIMIT ?", args + [limit]).fetchall():
            yield OutboundMessage(**dict(row))

    def destinations(self) -> list[str]:
        return [r[0] for r in self._db().execute("SELECT DISTINCT destination FROM message WHERE status = 'pending'")]

    def replay(self, message_id: int) -> OutboundMessage:
        """Queue a parked message again, as a new message at the end of its destination's queue.

        A new row keeps the order of what was acknowledged meaningful; the parked
        row stays as history with status ``parked``→``replayed``.
        """
        old = self.get(message_id)
        if old.status == SENT:
            raise ValueError(f"outbound message {message_id} was acknowledged; it is not sent again")
        with self._tx() as db:
            if old.status == PARKED:
                db.execute("UPDATE message SET status = 'replayed' WHERE id = ?", (message_id,))
                db.execute(
                    "INSERT INTO message (destination, key, content_type, payload, created) VALUES (?, NULL, ?, ?, ?)",
                    (old.destination, old.content_type, old.payload, time.time()),
                )
            else:
                db.execute("UPDATE message SET next_attempt = 0 WHERE id = ?", (message_id,))
        return self.get(message_id)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def owner_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{threading.get_ident()}"
