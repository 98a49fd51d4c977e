"""The inbox journal: a channel's raw messages (HL7 v2) appended to one file instead of a file each.

Creating a file costs more than applying a message, so each record (header, metadata, bytes) is one
``pwrite`` to the open journal; see the layout in :mod:`dacs_fhir.inbox`.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import struct
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

from .inbox_items import DONE, FAILED, FILE_MODE, JOURNAL_DIR, PENDING, InboxError, InboxItem, _fsync_dir, _make_dirs

__all__ = ["JOURNAL_DIR", "JOURNAL_ROTATE", "Journal"]

JOURNAL_ROTATE = 64 * 1024 * 1024
_MAGIC = b"\x1eJ1"
_HEADER = struct.Struct("3sc x10s x6s x17s c")  # magic, status, data length, meta length, received, "\n"
_STATUS_CODES = {PENDING: b"P", DONE: b"D", FAILED: b"F"}
_STATUS_NAMES = {v: k for k, v in _STATUS_CODES.items()}


def _read_record(fh, offset: int, kind: str, key: str) -> tuple[InboxItem, bytes, int]:
    """(item, bytes, offset of the next record) of the record at ``offset``; ValueError when torn."""
    fh.seek(offset)
    head = fh.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise ValueError("torn journal record")
    magic, code, dlen, mlen, received, nl = _HEADER.unpack(head)
    if magic != _MAGIC or nl != b"\n" or code not in _STATUS_NAMES:
        raise ValueError("not a journal record")
    meta_raw, data = fh.read(int(mlen)), fh.read(int(dlen))
    if len(data) != int(dlen):
        raise ValueError("torn journal record")
    when = float(received)
    item = InboxItem(kind=kind, key=key, status=_STATUS_NAMES[code], received=when, updated=when, size=len(data),
                     sha256=hashlib.sha256(data).hexdigest(), meta=json.loads(meta_raw or b"{}"))
    return item, data, offset + _HEADER.size + int(mlen) + int(dlen)


def _scan_journal(path: Path, kind: str) -> Iterator[InboxItem]:
    """Every whole record of a journal, oldest first (a record torn by a crash ends the scan)."""
    offset = 0
    with open(path, "rb") as fh:
        while True:
            try:
                item, _, nxt = _read_record(fh, offset, kind, f"j.{path.stem}.{offset}")
            except ValueError:
                return
            yield item
            offset = nxt


class Journal:
    """Append-only file of one kind's raw messages; thread-safe. A record is written with one
    ``pwrite`` (no file is created per message); :meth:`sync` makes every record so far durable."""

    def __init__(self, folder: Path, kind: str):
        self.folder, self.kind = folder, kind
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        self._stem = ""
        self._size = 0

    def _open(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        _make_dirs(self.folder)
        self._stem = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(3)}"
        self._fd = os.open(self.folder / f"{self._stem}.jnl", os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # in use: purge never removes a journal still appended to
        self._size = 0
        _fsync_dir(self.folder)

    def append(self, data: bytes, meta: Optional[dict] = None, durable: bool = False) -> InboxItem:
        """Keep ``data`` (status pending); ``durable``: fsync'd before this returns."""
        meta = dict(meta or {})
        meta_raw = json.dumps(meta, sort_keys=True).encode()
        now = time.time()
        head = _HEADER.pack(_MAGIC, b"P", b"%010d" % len(data), b"%06d" % len(meta_raw), b"%017.6f" % now, b"\n")
        try:
            with self._lock:
                if self._fd is None or self._size > JOURNAL_ROTATE:
                    self._open()
                assert self._fd is not None  # _open() set it
                offset = self._size
                record = head + meta_raw + data
                if os.pwrite(self._fd, record, offset) != len(record):
                    raise OSError("short write to the inbox journal")
                self._size += len(record)
                if durable:
                    os.fdatasync(self._fd)
                key = f"j.{self._stem}.{offset}"
        except OSError as exc:
            raise InboxError(f"inbox journal write failed: {exc.strerror or exc}") from exc
        return InboxItem(kind=self.kind, key=key, received=now, updated=now, size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), meta=meta)

    def set_status(self, key: str, status: str) -> bool:
        """Rewrite the status byte of a record of the open journal; False for a key of another journal."""
        stem, _, offset = key[2:].rpartition(".")
        with self._lock:
            if stem != self._stem or self._fd is None:
                return False
            os.pwrite(self._fd, _STATUS_CODES[status], int(offset) + 3)
        return True

    def close(self) -> None:
        """Close the open journal file (the next append opens a new one)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def sync(self) -> None:
        """Make every record written so far durable (before an error answer that promises a replay)."""
        with self._lock:
            if self._fd is not None:
                os.fdatasync(self._fd)
