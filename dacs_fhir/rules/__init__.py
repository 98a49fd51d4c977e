"""The rules stage: runs after a change is committed (docs/architecture.md).

Every channel's store transaction ends with a hand-off of the changes it committed (resource type,
id, version, previous version: :class:`dacs_fhir.store.Change`) to this stage. Rules register in
:data:`dacs_fhir.registry.rules` (built-ins on import, third parties through the ``dacs_fhir.rules``
entry-point group); each is a callable ``rule(change_set, store)`` that re-reads what it needs from
the store. A failing rule is logged and never undoes the committed write.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from ..registry import rules as registry
from ..store import Change

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChangeSet:
    """The changes one committed transaction made, and what caused them (an inbox item id)."""

    source: str
    changes: tuple[Change, ...]

    def as_message(self) -> list:
        """The JSON form a task message carries (ids and versions only)."""
        return [self.source, [c.as_list() for c in self.changes]]

    @classmethod
    def from_message(cls, value) -> "ChangeSet":
        source, changes = value
        return cls(source, tuple(Change.from_list(c) for c in changes))


def wanted() -> bool:
    """Whether any rule is registered (no hand-off is queued when none is)."""
    return bool(registry.names())


def run(change_set: ChangeSet, store) -> int:
    """Run every registered rule on ``change_set``; returns how many ran without error."""
    ran = 0
    for name in registry.names():
        try:
            registry.get(name)(change_set, store)
            ran += 1
        except Exception:
            log.exception("rule %s failed on the changes of %s", name, change_set.source)
    return ran
