"""The Celery task layer.

With ``DACS_BROKER_URL`` set (Redis or RabbitMQ) tasks go to the broker and a
``dacs-fhir worker`` runs them; without it they run in-process on one
background thread through Celery's eager execution, so the embedded default
needs no broker. Tasks carry only ids (an inbox item, a destination) and re-read
what they work on.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

from celery import Celery
from celery.signals import worker_process_init

from .config import Settings

log = logging.getLogger(__name__)

celery_app = Celery("dacs_fhir")
celery_app.conf.update(
    task_acks_late=True,  # a worker killed mid-task leaves the message on the broker
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_settings: Optional[Settings] = None
_pipeline = None
_worker = False  # this process is a ``dacs-fhir worker``: it writes and serves no searches
_lock = threading.Lock()
_executor: Optional[ThreadPoolExecutor] = None


def _apply_broker(settings: Settings) -> None:
    celery_app.conf.task_default_queue = settings.queue
    if settings.broker_url:
        celery_app.conf.update(broker_url=settings.broker_url, task_always_eager=False)
    else:
        celery_app.conf.update(broker_url="memory://", task_always_eager=True, task_eager_propagates=False)


def configure(settings: Settings, worker: bool = False) -> None:
    """Bind the task layer to ``settings`` (broker or in-process); ``worker``: for a worker process."""
    global _settings, _pipeline, _worker
    with _lock:
        _settings, _pipeline, _worker = settings, None, worker
    _apply_broker(settings)


def set_pipeline(pipeline) -> None:
    """Use an existing Pipeline for tasks run in this process (servers and tests)."""
    global _settings, _pipeline
    with _lock:
        _settings, _pipeline = pipeline.settings, pipeline
    _apply_broker(pipeline.settings)


def current_pipeline():
    """The process-wide Pipeline for the configured settings (created on first use)."""
    global _pipeline
    if _settings is None:
        configure(Settings.from_env())
    with _lock:
        if _pipeline is None:
            from .pipeline import Pipeline
            from .store import Store

            # a worker's PostgreSQL statements may use generic plans (see Store)
            store = Store(_settings.database_url, generic_plans=True) if _worker else None
            if store is not None:
                store.upgrade()
            _pipeline = Pipeline(_settings, store=store)
        return _pipeline


@celery_app.task(name="dacs_fhir.process_inbox_items", bind=True, max_retries=8, default_retry_delay=2)
def process_inbox_items(self, item_ids: list[str]) -> list[str]:
    """Map and store raw inbox objects one after the other, each in its own transaction; when the
    database is unavailable, the rest of them is retried as one task."""
    from .pipeline import TransientError

    out = []
    for n, item_id in enumerate(item_ids):
        try:
            out.append(current_pipeline().process(item_id).status)
        except TransientError as exc:
            raise self.retry(args=(item_ids[n:],), exc=exc)
    return out


@celery_app.task(name="dacs_fhir.process_inbox_item", bind=True, max_retries=8, default_retry_delay=2)
def process_inbox_item(self, item_id: str) -> str:
    """One raw inbox object (messages queued one per object; in-process tasks)."""
    from .pipeline import TransientError

    try:
        return current_pipeline().process(item_id).status
    except TransientError as exc:
        raise self.retry(exc=exc)


class _Batcher:
    """Sends inbox item ids to the broker as one task per batch.

    A C-STORE stream brings objects faster than a task message each is worth: ``apply_async``
    costs about 1.5 ms of CPU, half of what the SCP otherwise spends on an object, and a worker
    pays its own share per message (a Redis acknowledgment and the pool's hand-over: about a tenth of
    the worker's CPU with batches of two). A batch leaves ``window`` seconds after its first id, or
    when it holds ``limit`` ids, from a background thread, so the C-STORE response never waits
    for the broker. Ids not yet sent when the process dies belong to items kept pending in the
    inbox, which ``dacs-fhir serve`` and ``dacs-fhir worker`` enqueue again when they start."""

    def __init__(self, window: float = 0.25, limit: int = 16):
        self.window, self.limit = window, limit
        self._ids: list[str] = []
        self._sending = 0
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def add(self, item_id: str) -> None:
        with self._cond:
            self._ids.append(item_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dacs-enqueue", daemon=True)
                self._thread.start()
            if len(self._ids) in (1, self.limit):  # a batch begins or is full (waking it for each id costs)
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._ids:
                    self._cond.wait()
                deadline = time.monotonic() + self.window
                while len(self._ids) < self.limit and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                ids, self._ids = self._ids[: self.limit], self._ids[self.limit:]
                self._sending += 1
            try:
                process_inbox_items.apply_async(args=(ids,))
            except Exception:  # noqa: BLE001 - the items stay pending in the inbox, re-enqueued on start
                log.exception("enqueueing %d inbox items failed; they stay pending", len(ids))
            finally:
                with self._cond:
                    self._sending -= 1
                    self._cond.notify_all()

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every id added so far has been handed to the broker."""
        end = time.monotonic() + timeout
        with self._cond:
            while (self._ids or self._sending) and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)


_batcher = _Batcher()


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    """A prefork pool child must not share the parent's database connections (SQLAlchemy pooling docs)."""
    if _pipeline is not None:
        _pipeline.store.engine.dispose(close=False)


def register_task_modules() -> None:
    """Import the modules that define tasks so a worker knows every task name."""
    from .delivery import task  # noqa: F401  (dacs_fhir.deliver_destination)


def _local_executor() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            # one thread: objects of one study are merged in arrival order
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dacs-task")
        return _executor


def enqueue_processing(item_id: str, settings: Settings) -> Optional[Future]:
    """Hand an inbox item to the task layer; returns a Future when run in-process."""
    if settings.broker_url:
        _batcher.add(item_id)
        return None
    return _local_executor().submit(process_inbox_item.apply, args=(item_id,))


def flush_enqueued(timeout: float = 10.0) -> None:
    """Hand the ids still waiting for a batch to the broker (listeners stopping)."""
    _batcher.flush(timeout)


def drain(timeout: float = 60.0) -> None:
    """Wait for in-process tasks queued so far, and until queued ids are with the broker (tests,
    import, shutdown)."""
    _batcher.flush(timeout)
    ex = _executor
    if ex is not None:
        ex.submit(lambda: None).result(timeout=timeout)
