"""Inbox retention: removing processed items (done, failed) once older than their retention period.

Pending items are never removed: they are what a crash or a fix still has to process. An item's
age is counted from its last outcome (``updated``). A journal file (HL7 v2) is removed whole, once
every record in it may be removed and no process has it open for appending (it holds a shared
``flock`` on it; see ``Journal._open``); records of a journal still in use wait for the next purge.
"""
from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .inbox import DONE, FAILED, INCOMING, JOURNAL_DIR, Inbox, InboxItem
from .inbox_journal import _scan_journal

DAY = 86400.0
STALE_SPOOL = DAY  # an .incoming file this old belongs to a receiver that crashed


@dataclass
class Purged:
    """What one purge removed (or, dry run, would remove)."""

    items: list[InboxItem] = field(default_factory=list)
    bytes: int = 0
    kept_in_open_journals: int = 0


def _expired(item: InboxItem, cutoffs: dict[str, float]) -> bool:
    cutoff = cutoffs.get(item.status)
    return cutoff is not None and item.updated < cutoff


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _journal_unused(path: Path) -> bool:
    """True when no process appends to the journal (it would hold a shared lock on it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def purge(inbox: Inbox, days: dict[str, Optional[float]], dry_run: bool = False, now: Optional[float] = None) -> Purged:
    """Remove items whose status is a key of ``days`` and whose last outcome is older than that many
    days (None: that status is kept). Pending items are never removed, whatever ``days`` says."""
    now = time.time() if now is None else now
    cutoffs = {s: now - d * DAY for s, d in days.items() if d is not None and s in (DONE, FAILED)}
    out = Purged()
    if not cutoffs:
        return out
    for kind in inbox.kinds():
        for raw in sorted((inbox.root / kind).glob("*/*.raw")):
            item = inbox.get(f"{kind}/{raw.name[:-4]}")
            if _expired(item, cutoffs):
                out.items.append(item)
                out.bytes += item.size
                if not dry_run:
                    _unlink(raw)
                    _unlink(inbox.state_path(item.id))
        for path in sorted((inbox.root / kind / JOURNAL_DIR).glob("*.jnl")):
            records = [inbox._read_state(inbox.state_path(r.id)) or r for r in _scan_journal(path, kind)]
            if not records or not all(_expired(r, cutoffs) for r in records):
                continue
            if not _journal_unused(path):
                out.kept_in_open_journals += len(records)
                continue
            out.items.extend(records)
            out.bytes += sum(r.size for r in records)
            if not dry_run:
                _unlink(path)
                for r in records:
                    _unlink(inbox.state_path(r.id))
        if not dry_run:
            for folder in (inbox.root / kind).iterdir():
                if folder.is_dir() and folder.name != JOURNAL_DIR:
                    try:
                        folder.rmdir()  # only when empty
                    except OSError:
                        pass
    if not dry_run:
        for part in (inbox.root / INCOMING).glob("*.part"):
            try:
                if part.stat().st_mtime < now - STALE_SPOOL:
                    part.unlink()
            except FileNotFoundError:
                pass
    return out
