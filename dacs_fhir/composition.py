"""The composition root: builds a deployment's parts from its settings and injects what each needs
(docs/architecture.md). Commands, servers, workers and tests build their pipeline here; no module
keeps a running pipeline, store or settings of its own."""
from __future__ import annotations

from typing import Optional

from .config import Settings, ensure_private_dir
from .delivery import Outbox, Pumps
from .inbox import Inbox
from .pipeline import Pipeline
from .tasks import TaskLayer


def build_pipeline(settings: Optional[Settings] = None, store=None, worker: bool = False,
                   inbox: Optional[Inbox] = None) -> Pipeline:
    """Store (migrated), raw inbox, task layer and the pipeline over them. ``worker``: for a
    ``dacs-fhir worker`` process (its store lets PostgreSQL reuse generic plans, see Store)."""
    from .store import Store

    settings = settings or Settings.from_env()
    ensure_private_dir(settings.data_dir)
    if store is None:
        store = Store(settings.database_url, generic_plans=worker)
        store.upgrade()
    tasks = TaskLayer(settings, worker=worker)
    # the outbox's senders: a worker's task with a broker, else a thread per destination here
    deliveries = Pumps(Outbox(store), tasks.schedule_delivery if settings.broker_url else None)
    pipeline = Pipeline(settings, store, inbox or Inbox(settings.inbox_dir), tasks, deliveries)
    tasks.bind(pipeline)
    return pipeline
