"""The Celery task that sends a destination's queue, and the ``schedule`` that queues it.

Kept apart from :mod:`.pump` (which knows no task queue) so the task layer can own it; a worker
imports this module to know the task name ``dacs_fhir.deliver_destination``.
"""
from __future__ import annotations

from typing import Optional

from ..tasks import celery_app
from .outbox import Outbox
from .pump import Schedule, drain

_outboxes: dict[str, Outbox] = {}


def _outbox() -> Outbox:
    """The outbox of the worker's store (its pipeline's, so no second engine)."""
    from .. import tasks

    store = tasks.current_pipeline().store
    key = str(store.engine.url)
    if key not in _outboxes:
        _outboxes[key] = Outbox(store)
    return _outboxes[key]


@celery_app.task(name="dacs_fhir.deliver_destination", bind=True, ignore_result=True)
def deliver_destination(self, url: str) -> None:
    """Send one destination's queue; queue itself again for the next retry that is due."""
    delay = drain(_outbox(), url)
    if delay is not None:
        self.apply_async(args=(url,), countdown=max(delay, 0.05))


def schedule_for(queue: Optional[str] = None) -> Schedule:
    """``schedule(url, countdown)`` for :class:`~.pump.Pumps`: the task, on ``queue``."""

    def schedule(url: str, countdown: float) -> None:
        deliver_destination.apply_async(args=(url,), countdown=countdown or None, queue=queue)

    return schedule
