"""The rules stage: runs after a change is committed (DESIGN.md §1).

Rules register in :data:`dacs_fhir.registry.rules` (built-ins on import, third
parties through the ``dacs_fhir.rules`` entry-point group). Each is a callable
taking the pipeline :class:`~dacs_fhir.pipeline.Outcome`; alert rules, topic
matching and notification arrive with the monitoring issue. A failing rule is
logged and never undoes the committed write.
"""
from __future__ import annotations

import logging

from ..registry import rules as registry

log = logging.getLogger(__name__)


def after_commit(outcome) -> int:
    """Run every registered rule on ``outcome``; returns how many ran without error."""
    ran = 0
    for name, rule in registry:
        try:
            rule(outcome)
            ran += 1
        except Exception:
            log.exception("rule %s failed", name)
    return ran
