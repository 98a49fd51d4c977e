"""The raw inbox: every inbound object is kept, durably, before it is processed.

Layout under ``DATA_DIR/inbox`` (folders 0700, files 0600: the bytes are PHI)::

    <kind>/<day>/<key>.raw          the bytes as received (written once, never replaced)
    <kind>/<day>/<key>.state.json   status, reason, attempts, metadata
    .incoming/<random>.part         an object still arriving (streamed to disk by the DICOM SCP)

``kind`` is the channel (``dicom``, ``hl7v2``, ``fhir``, ``file``). The ``key`` is made here, never
taken from a peer: ``<UTC time to the µs>-<random>`` (time-ordered, unique), so a second object
under a peer's identifier (a re-sent or forged SOP Instance UID) is a new item and the first stays
as it was. What a caller passes as ``key`` is kept as metadata (``ref``). Keys of inboxes written
before (SOP Instance UIDs, SHA-256 digests, under ``<key[:2]>/``) are still read.

The raw bytes go to a temporary file that is fsync'd and renamed, then the directory is fsync'd:
once :meth:`Inbox.put` returns, the object survives a crash. The state file is written without
fsync: a raw file whose state was lost counts as pending, and a lost "done" mark only means the
object is processed again, which the pipeline treats as a duplicate.

A channel that receives many small messages on one connection (HL7 v2) keeps them in an append-only
journal instead, because creating a file costs more than applying a message::

    <kind>/journal/<stamp>-<pid>-<random>.jnl   records: header, metadata, bytes

Each record's header holds its status byte, rewritten in place when the message is applied; a later
mark (failed, replayed) goes to the usual state file, which takes precedence. Journal items have keys
``j.<journal>.<offset>`` and are listed, shown, read and replayed like the others (the journal itself:
:mod:`dacs_fhir.inbox_journal`; retention: :mod:`dacs_fhir.inbox_retention`).
"""
from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional

from .inbox_items import (
    DIR_MODE,
    DONE,
    FAILED,
    FILE_MODE,
    INCOMING,
    JOURNAL_DIR,
    PENDING,
    STATUSES,
    InboxError,
    InboxItem,
    _fsync_dir,
    _make_dirs,
)
from .inbox_journal import JOURNAL_ROTATE, Journal, _read_record, _scan_journal

__all__ = ["DIR_MODE", "DONE", "FAILED", "FILE_MODE", "INCOMING", "JOURNAL_DIR", "JOURNAL_ROTATE", "PENDING", "STATUSES",
           "Inbox", "InboxError", "InboxItem", "Journal", "split_id"]

_JOURNALS_LOCK = threading.Lock()
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_KEY = re.compile(r"\d{8}T\d{6}\.\d{6}-[0-9a-f]{10}\Z")  # made by _new_key: its day is its folder
# keys of earlier inboxes (a SOP Instance UID, a digest) and journal keys: folder key[:2]
_LEGACY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\Z")


_STATE_BLOCK = 512


def split_id(item_id: str) -> tuple[str, str]:
    """(kind, key) of an item id; ValueError for anything that is not one (``..``, ``a/b/c``, …),
    so that no id given on a command line or by a peer names a file outside the inbox."""
    kind, _, key = str(item_id).partition("/")
    if not _KIND.match(kind) or len(key) > 200 or not (_KEY.match(key) or _LEGACY_KEY.match(key)):
        raise ValueError(f"not an inbox item id: {item_id[:80]!r}")
    return kind, key


def _new_key(now: float) -> str:
    """A fresh key: UTC time to the microsecond, then 40 random bits (sorts in arrival order)."""
    micros = int(now * 1_000_000) % 1_000_000
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{micros:06d}-{secrets.token_hex(5)}"


def _write_new(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to a new file at ``path`` through a temporary file renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)  # the key is new: nothing is there to replace
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


class Spool:
    """An object being received, written to ``.incoming`` as it arrives (memory stays bounded);
    :meth:`Inbox.put_spool` moves it into the inbox, :meth:`discard` drops it."""

    def __init__(self, root: Path):
        folder = root / INCOMING
        _make_dirs(folder)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".part")  # mode 0600
        self.path = Path(name)
        self._fh = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self, durable: bool = False) -> None:
        if not self._fh.closed:
            self._fh.flush()
            if durable:
                os.fsync(self._fh.fileno())
            self._fh.close()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class Inbox:
    """Durable, replayable store of raw inbound objects."""

    def __init__(self, root: Path | str, durable: bool = True):
        self.root = Path(root)
        self.durable = durable
        self._journals: dict[str, Journal] = {}

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        folder = self.root / kind / (key[:8] if _KEY.match(key) else key[:2])
        return folder / f"{key}.raw", folder / f"{key}.state.json"

    def _new_item(self, kind: str, size: int, digest: str, key: Optional[str], meta: Optional[dict]) -> tuple[InboxItem, Path]:
        if not _KIND.match(kind):
            raise ValueError(f"not an inbox kind: {kind!r}")
        now = time.time()
        meta = dict(meta or {})
        if key:
            meta.setdefault("ref", str(key))  # the caller's name for it: metadata, never a path
        item = InboxItem(kind=kind, key=_new_key(now), received=now, updated=now, size=size, sha256=digest, meta=meta)
        raw = self._paths(kind, item.key)[0]
        _make_dirs(raw.parent)
        return item, raw

    def put(self, kind: str, data: bytes, key: Optional[str] = None, meta: Optional[dict] = None) -> InboxItem:
        """Keep ``data`` durably as a new item (status ``pending``) and return it.

        Every call makes a new item: an object received twice is kept twice (processing finds the
        second a duplicate), and nothing received before is ever replaced. ``key``: the caller's
        reference (a request id), kept as ``meta["ref"]``.
        """
        try:
            item, raw = self._new_item(kind, len(data), hashlib.sha256(data).hexdigest(), key, meta)
            _write_new(raw, data, self.durable)
            self._write_state(self._paths(kind, item.key)[1], item)
        except OSError as exc:
            raise InboxError(f"inbox write failed: {exc.strerror or exc}") from exc
        return item

    def spool(self) -> Spool:
        """A file to stream an arriving object into (then :meth:`put_spool` or ``discard``)."""
        try:
            return Spool(self.root)
        except OSError as exc:
            raise InboxError(f"inbox write failed: {exc.strerror or exc}") from exc

    def put_spool(self, kind: str, spool: Spool, meta: Optional[dict] = None) -> InboxItem:
        """Keep a spooled object as a new item, as :meth:`put` does for bytes (no copy: a rename)."""
        try:
            spool.close(durable=self.durable)
            item, raw = self._new_item(kind, spool.size, spool.sha256, None, meta)
            os.rename(spool.path, raw)
            if self.durable:
                _fsync_dir(raw.parent)
            self._write_state(self._paths(kind, item.key)[1], item)
        except OSError as exc:
            spool.discard()
            raise InboxError(f"inbox write failed: {exc.strerror or exc}") from exc
        return item

    def _read_state(self, path: Path) -> Optional[InboxItem]:
        """The item's state; None when there is none, or only a torn one (see ``_write_state``)."""
        try:
            return InboxItem(**json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # a crash in the middle of a state write
            return None

    def _write_state(self, path: Path, item: InboxItem) -> None:
        """Write the state file in place, not synced and not through a renamed temporary file: a new
        file per mark cost five times the CPU of an overwrite. A state is only ever lost in a crash,
        and an item without a readable state is pending (``get``): processed again, which finds it
        a duplicate. The item's bytes are what is kept durably (``put``).

        The file is overwritten from its start and never truncated to zero: the JSON is padded with
        spaces to whole blocks of ``_STATE_BLOCK`` bytes, so a mark rewrites the same allocated block.
        Truncating to zero and writing again made ext4 free and allocate the block and start its
        write-back at close (``auto_da_alloc``): 140 against 9 µs per mark, measured. A crash between
        the write and the truncation of a longer old state leaves JSON with bytes after it: torn."""
        data = json.dumps(asdict(item), sort_keys=True).encode()
        data += b" " * (-len(data) % _STATE_BLOCK)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        except FileNotFoundError:
            _make_dirs(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def journal(self, kind: str) -> "Journal":
        """The append-only journal of ``kind`` (one open file per inbox and kind)."""

        if not _KIND.match(kind):
            raise ValueError(f"not an inbox kind: {kind!r}")
        with _JOURNALS_LOCK:
            if kind not in self._journals:
                self._journals[kind] = Journal(self.root / kind / JOURNAL_DIR, kind)
            return self._journals[kind]

    def _journal_ref(self, kind: str, key: str) -> Optional[tuple[Path, int]]:
        """(journal file, record offset) of a journal item's key, None for any other key."""
        if not key.startswith("j."):
            return None
        stem, _, offset = key[2:].rpartition(".")
        path = self.root / kind / JOURNAL_DIR / f"{stem}.jnl"
        return (path, int(offset)) if offset.isdigit() and path.is_file() else None

    def get(self, item_id: str) -> InboxItem:
        """The item ``item_id``; KeyError when there is none (or the id is not an inbox id)."""
        try:
            kind, key = split_id(item_id)
        except ValueError:
            raise KeyError(item_id) from None
        raw, state = self._paths(kind, key)
        item = self._read_state(state)
        if item is None and (ref := self._journal_ref(kind, key)):

            with open(ref[0], "rb") as fh:
                item = _read_record(fh, ref[1], kind, key)[0]
        if item is None:
            if not raw.exists():
                raise KeyError(item_id)
            # kept durably, but the (unsynced) state file was lost in a crash: still to do
            stat = raw.stat()
            item = InboxItem(kind=kind, key=key, received=stat.st_mtime, updated=stat.st_mtime, size=stat.st_size)
        return item

    def read(self, item_id: str) -> bytes:
        kind, key = split_id(item_id)
        if ref := self._journal_ref(kind, key):

            with open(ref[0], "rb") as fh:
                return _read_record(fh, ref[1], kind, key)[1]
        return self._paths(kind, key)[0].read_bytes()

    def path(self, item_id: str) -> Path:
        """The file holding the item's bytes (for a journal item, its journal)."""
        kind, key = split_id(item_id)
        if ref := self._journal_ref(kind, key):
            return ref[0]
        return self._paths(kind, key)[0]

    def state_path(self, item_id: str) -> Path:
        return self._paths(*split_id(item_id))[1]

    def mark(self, item_id: str, status: str, reason: str = "", item: Optional[InboxItem] = None, **meta) -> InboxItem:
        """Record the outcome of processing (``done`` or ``failed`` with a one-line reason); ``item``: the
        item as ``put`` returned it, when nothing else has changed it since (saves reading its state)."""
        if status not in STATUSES:
            raise ValueError(status)
        split_id(item_id)
        item = self.get(item_id) if item is None else item
        item.status = status
        item.reason = reason.splitlines()[0][:500] if reason else ""
        item.updated = time.time()
        if status != PENDING:
            item.attempts += 1
        item.meta.update(meta)
        self._write_state(self._paths(item.kind, item.key)[1], item)
        return item

    def kinds(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _KIND.match(p.name) and p.is_dir())

    def list(self, status: Optional[str] = None, kind: Optional[str] = None) -> Iterator[InboxItem]:

        for k in [kind] if kind else self.kinds():
            for raw in sorted((self.root / k).glob("*/*.raw")):
                item = self.get(f"{k}/{raw.name[:-4]}")
                if status is None or item.status == status:
                    yield item
            for path in sorted((self.root / k / JOURNAL_DIR).glob("*.jnl")):
                for item in _scan_journal(path, k):
                    item = self._read_state(self._paths(k, item.key)[1]) or item  # a later mark wins
                    if status is None or item.status == status:
                        yield item

    def find(self, kind: str, **meta) -> builtins.list[InboxItem]:  # ``list`` here is Inbox.list
        """Items of ``kind`` whose metadata has these values (e.g. ``sop_instance_uid=…``), oldest first."""
        return [i for i in self.list(kind=kind) if all(i.meta.get(k) == v for k, v in meta.items())]
