"""The Celery task layer of one deployment (docs/architecture.md).

With ``DACS_BROKER_URL`` set (Redis or RabbitMQ) tasks go to the broker and a
``dacs-fhir worker`` runs them; without it they run in-process on one
background thread through Celery's eager execution, so the embedded default
needs no broker. Tasks carry only ids (inbox items, changed resources, a
destination) and re-read what they work on.

No state lives in this module: a :class:`TaskLayer` owns its Celery app, and the
composition root (:mod:`dacs_fhir.composition`) binds it to the pipeline it
serves. A task finds its layer through its app (``task.app.dacs``).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Optional

from celery import Celery, shared_task
from celery.signals import worker_process_init

from .config import Settings
from .errors import TransientError

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .rules import ChangeSet

log = logging.getLogger(__name__)

PROCESS_ITEMS = "dacs_fhir.process_inbox_items"
RUN_RULES = "dacs_fhir.run_rules"
DELIVER = "dacs_fhir.deliver_destination"


class TaskLayer:
    """One deployment's Celery app and the ways work is handed to it (broker or in-process)."""

    def __init__(self, settings: Settings, worker: bool = False):
        self.settings = settings
        self.worker = worker  # a ``dacs-fhir worker`` process: it writes and serves no searches
        self.celery = Celery("dacs_fhir", set_as_current=False)
        self.celery.conf.update(
            task_acks_late=True,  # a worker killed mid-task leaves the message on the broker
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            task_serializer="json",
            accept_content=["json"],
            task_ignore_result=True,
            broker_connection_retry_on_startup=True,
            worker_hijack_root_logger=False,
            task_default_queue=settings.queue,
        )
        if settings.broker_url:
            self.celery.conf.update(broker_url=settings.broker_url, task_always_eager=False)
        else:
            self.celery.conf.update(broker_url="memory://", task_always_eager=True, task_eager_propagates=False)
        self.celery.dacs = self  # how a task finds its layer
        self._pipeline: Optional["Pipeline"] = None
        self._idle = threading.Condition()  # in-process tasks: how many are queued or running
        self._outstanding = 0
        self._executor: Optional[ThreadPoolExecutor] = None
        self._batcher = Batcher(lambda ids: self.celery.tasks[PROCESS_ITEMS].apply_async(args=(ids,)))
        worker_process_init.connect(self._after_fork, weak=False)

    # ---- composition
    def bind(self, pipeline: "Pipeline") -> None:
        """The pipeline this layer's tasks run on (the composition root calls this once)."""
        self._pipeline = pipeline

    @property
    def pipeline(self) -> "Pipeline":
        if self._pipeline is None:
            raise RuntimeError("task layer used before the composition root bound it to a pipeline")
        return self._pipeline

    def _after_fork(self, **_kwargs) -> None:
        """A prefork pool child must not share the parent's database connections (SQLAlchemy pooling docs)."""
        if self._pipeline is not None:
            self._pipeline.store.engine.dispose(close=False)

    # ---- hand work over
    def enqueue_processing(self, item_id: str) -> Optional[Future]:
        """Hand an inbox item over; returns a Future when run in-process."""
        if self.settings.broker_url:
            self._batcher.add(item_id)
            return None
        return self._run_local(PROCESS_ITEMS, [item_id])

    def enqueue_rules(self, change_set: "ChangeSet") -> Optional[Future]:
        """Hand committed changes to the rules stage, off the request path."""
        if self.settings.broker_url:
            self.celery.tasks[RUN_RULES].apply_async(args=(change_set.as_message(),))
            return None
        return self._run_local(RUN_RULES, change_set.as_message())

    def schedule_delivery(self, url: str, countdown: float = 0.0) -> None:
        """A broker: send ``url``'s outbound queue from a worker (after ``countdown`` seconds)."""
        self.celery.tasks[DELIVER].apply_async(args=(url,), countdown=countdown or None)

    def _run_local(self, name: str, arg) -> Future:
        with self._idle:
            if self._executor is None:
                # one thread: objects of one study are merged in arrival order
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dacs-task")
            self._outstanding += 1
            future = self._executor.submit(self.celery.tasks[name].apply, args=(arg,))
        future.add_done_callback(self._done_local)
        return future

    def _done_local(self, _future: Future) -> None:
        with self._idle:
            self._outstanding -= 1
            self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Hand the ids still waiting for a batch to the broker (listeners stopping)."""
        self._batcher.flush(timeout)

    def drain(self, timeout: float = 60.0) -> None:
        """Wait for in-process tasks queued so far, and until queued ids are with the broker (tests,
        import, shutdown)."""
        end = time.monotonic() + timeout
        self._batcher.flush(timeout)
        with self._idle:  # a task may queue another (rules after an object): wait for all of them
            while self._outstanding and (left := end - time.monotonic()) > 0:
                self._idle.wait(left)

    def shutdown(self) -> None:
        self.flush()
        with self._idle:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


# ---- the tasks: module-level functions, no state; each finds its layer through its app
@shared_task(name=PROCESS_ITEMS, bind=True, max_retries=8, default_retry_delay=2)
def process_inbox_items(self, item_ids: list[str]) -> list[str]:
    """Map and store raw inbox objects one after the other, each in its own transaction; when the
    database is unavailable, the rest of them is retried as one task."""
    pipeline = self.app.dacs.pipeline
    out = []
    for n, item_id in enumerate(item_ids):
        try:
            out.append(pipeline.process(item_id).status)
        except TransientError as exc:
            raise self.retry(args=(item_ids[n:],), exc=exc) from exc
    return out


@shared_task(name=RUN_RULES, bind=True)
def run_rules(self, message: list) -> int:
    """The rules stage on one committed transaction's changes."""
    from .rules import ChangeSet, run

    return run(ChangeSet.from_message(message), self.app.dacs.pipeline.store)


@shared_task(name=DELIVER, bind=True, ignore_result=True)
def deliver_destination(self, url: str) -> None:
    """Send one destination's queue; re-queue itself for the next retry that is due."""
    from .delivery import drain

    delay = drain(self.app.dacs.pipeline.deliveries.outbox, url)
    if delay is not None:
        self.apply_async(args=(url,), countdown=max(delay, 0.05))


class Batcher:
    """Sends ids to the broker as one task per batch.

    A C-STORE stream brings objects faster than a task message each is worth: ``apply_async``
    costs about 1.5 ms of CPU, half of what the SCP otherwise spends on an object, and a worker
    pays its own share per message (a Redis acknowledgment and the pool's hand-over: about a tenth of
    the worker's CPU with batches of two). A batch leaves ``window`` seconds after its first id, or
    when it holds ``limit`` ids, from a background thread, so the C-STORE response never waits
    for the broker. Ids not yet sent when the process dies belong to items kept pending in the
    inbox, which ``dacs-fhir serve`` and ``dacs-fhir worker`` enqueue again when they start."""

    def __init__(self, send: Callable[[list[str]], object], window: float = 0.25, limit: int = 16):
        self.send = send
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
                self.send(ids)
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
