"""The raw inbox: every inbound object is kept, durably, before it is processed.

Layout under ``DATA_DIR/inbox``::

    <kind>/<key[:2]>/<key>.raw          the bytes as received (written once)
    <kind>/<key[:2]>/<key>.state.json   status, reason, attempts, metadata

``kind`` is the channel (``dicom``, ``hl7v2``, ``fhir``, ``file``); ``key`` is the
SHA-256 of the bytes unless the caller gives one (the DICOM SCP keys by SOP
Instance UID so that a re-sent object overwrites nothing and is found again).
The raw bytes go to a temporary file that is fsync'd and renamed, then the
directory is fsync'd: once :meth:`Inbox.put` returns, the object survives a
crash. The state file is written without fsync: a raw file whose state was lost
counts as pending, and a lost "done" mark only means the object is processed
again, which the pipeline treats as a duplicate.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

PENDING = "pending"
DONE = "done"
FAILED = "failed"
STATUSES = (PENDING, DONE, FAILED)

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class InboxError(OSError):
    """The inbox could not store an object (disk full, permissions …)."""


@dataclass
class InboxItem:
    kind: str
    key: str
    status: str = PENDING
    reason: str = ""
    attempts: int = 0
    received: float = 0.0
    updated: float = 0.0
    size: int = 0
    sha256: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.key}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


class Inbox:
    """Durable, replayable store of raw inbound objects."""

    def __init__(self, root: Path | str, durable: bool = True):
        self.root = Path(root)
        self.durable = durable

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        folder = self.root / kind / key[:2]
        return folder / f"{key}.raw", folder / f"{key}.state.json"

    @staticmethod
    def safe_key(key: str) -> str:
        key = _SAFE.sub("_", key.strip())[:200]
        if not key:
            raise ValueError("empty inbox key")
        return key

    def put(self, kind: str, data: bytes, key: Optional[str] = None, meta: Optional[dict] = None,
            new: bool = False) -> InboxItem:
        """Store ``data`` durably and return its item (status ``pending``).

        The same key again replaces the bytes and resets the state to pending
        (a modality re-sending a corrected object); identical bytes keep their
        attempts count. ``new=True``, for a caller that marks the item at once (the HL7 receiver): no
        earlier state is read (attempts restart) and none is written, as raw bytes without a state are pending.
        """
        digest = hashlib.sha256(data).hexdigest()
        key = self.safe_key(key or digest)
        raw, state = self._paths(kind, key)
        try:
            raw.parent.mkdir(parents=True, exist_ok=True)
            previous = None if new else self._read_state(state)
            _atomic_write(raw, data, self.durable)
            now = time.time()
            item = InboxItem(
                kind=kind,
                key=key,
                status=PENDING,
                received=now,
                updated=now,
                size=len(data),
                sha256=digest,
                meta=dict(meta or {}),
                attempts=previous.attempts if previous and previous.sha256 == digest else 0,
            )
            if not new:
                self._write_state(state, item)
        except OSError as exc:
            raise InboxError(f"inbox write failed: {exc.strerror or exc}") from exc
        return item

    def _read_state(self, path: Path) -> Optional[InboxItem]:
        try:
            return InboxItem(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None

    def _write_state(self, path: Path, item: InboxItem) -> None:
        _atomic_write(path, json.dumps(asdict(item), sort_keys=True).encode(), durable=False)

    def get(self, item_id: str) -> InboxItem:
        kind, _, key = item_id.partition("/")
        raw, state = self._paths(kind, key)
        item = self._read_state(state)
        if item is None:
            if not raw.exists():
                raise KeyError(item_id)
            # kept durably, but the (unsynced) state file was lost in a crash: still to do
            stat = raw.stat()
            item = InboxItem(kind=kind, key=key, received=stat.st_mtime, updated=stat.st_mtime, size=stat.st_size)
        return item

    def read(self, item_id: str) -> bytes:
        kind, _, key = item_id.partition("/")
        return self._paths(kind, key)[0].read_bytes()

    def path(self, item_id: str) -> Path:
        kind, _, key = item_id.partition("/")
        return self._paths(kind, key)[0]

    def mark(self, item_id: str, status: str, reason: str = "", item: Optional[InboxItem] = None, **meta) -> InboxItem:
        """Record the outcome of processing (``done`` or ``failed`` with a one-line reason); ``item``: the
        item as ``put`` returned it, when nothing else has changed it since (saves reading its state)."""
        if status not in STATUSES:
            raise ValueError(status)
        item = self.get(item_id) if item is None else item
        item.status = status
        item.reason = reason.splitlines()[0][:500] if reason else ""
        item.updated = time.time()
        if status != PENDING:
            item.attempts += 1
        item.meta.update(meta)
        self._write_state(self._paths(item.kind, item.key)[1], item)
        return item

    def list(self, status: Optional[str] = None, kind: Optional[str] = None) -> Iterator[InboxItem]:
        kinds = [kind] if kind else sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.exists() else []
        for k in kinds:
            for raw in sorted((self.root / k).glob("*/*.raw")):
                item = self.get(f"{k}/{raw.name[:-4]}")
                if status is None or item.status == status:
                    yield item
