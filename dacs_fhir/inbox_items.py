"""Inbox items, their statuses and the file modes and folder helpers the inbox and its journal share."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PENDING = "pending"
DONE = "done"
FAILED = "failed"
STATUSES = (PENDING, DONE, FAILED)

DIR_MODE, FILE_MODE = 0o700, 0o600
INCOMING = ".incoming"
JOURNAL_DIR = "journal"  # <kind>/journal/*.jnl: see inbox_journal

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


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents 0700; a new folder's entry is fsync'd in its parent."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return
    _fsync_dir(path.parent)
