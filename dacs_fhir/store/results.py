"""What the store's operations return and record: outcomes of writes, changes, history entries."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Optional


@dataclass
class Outcome:
    resource: dict
    status: str  # created | updated | existing
    changed: bool = True  # False when an update carried the same content (no new version)


@dataclass(frozen=True)
class Change:
    """One resource a committed transaction changed: what the rules stage is handed after commit
    (docs/architecture.md). ``previous_version`` is None for a create; ``version`` of a delete is its
    tombstone version."""
    resource_type: str
    id: str
    version: int
    previous_version: Optional[int]
    method: str  # create | update | delete

    def as_list(self) -> list:
        """The JSON form that task messages carry."""
        return [self.resource_type, self.id, self.version, self.previous_version, self.method]

    @classmethod
    def from_list(cls, value) -> "Change":
        rtype, rid, version, previous, method = value
        return cls(rtype, rid, int(version), None if previous is None else int(previous), method)


@dataclass
class HistoryEntry:
    resource: Optional[dict]
    method: str  # create | update | delete
    versionId: str
    lastUpdated: str
    rtype: str
    rid: str


@dataclass
class History:
    total: int
    entries: list[HistoryEntry]


def new_id() -> str:
    return str(uuid.uuid4())


def etag_version(value: Optional[str]) -> Optional[str]:
    """``W/"3"`` or ``3`` -> ``3``."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')
