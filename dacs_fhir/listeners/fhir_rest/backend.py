"""What the REST layer writes through: the store, the raw inbox and the pipeline's after-commit hook.

Inbound FHIR writes follow the ingest rule of DESIGN.md §1: the raw body is kept in the inbox
first, then applied in one store transaction, then the item is marked done or failed and the
committed change is handed to the rules stage.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from typing import Iterator, Optional

from flask import Flask, current_app, request

from ...inbox import DONE, FAILED, Inbox

log = logging.getLogger(__name__)

EXTENSION = "dacs_fhir.rest"


class Backend:
    """Flask extension: ``Backend(settings, store, pipeline).init_app(app)``."""

    def __init__(self, settings, store, pipeline=None, inbox: Optional[Inbox] = None):
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.inbox = inbox or (pipeline.inbox if pipeline is not None else Inbox(settings.inbox_dir))

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    @contextmanager
    def write(self, body: bytes, **meta) -> Iterator[list]:
        """Keep ``body`` in the inbox, yield a list to collect ``Type/id`` written, then mark the item.

        The transaction is the caller's (inside this block); the rules hook runs only after it
        committed, i.e. after the block ended without error.
        """
        meta = {"method": request.method, "path": request.path, **{k: v for k, v in meta.items() if v}}
        # one key per request: two identical bodies are two writes, each with its own outcome
        key = uuid.uuid4().hex
        item = self.inbox.put("fhir", body, key=key, meta=meta)
        written: list[str] = []
        try:
            yield written
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            try:
                self.inbox.mark(item.id, FAILED, reason)
            except OSError:
                log.exception("could not mark inbox item %s failed", item.id)
            raise
        self.inbox.mark(item.id, DONE, "", resources=written)
        if written:
            self.after_commit(item.id, written)

    def after_commit(self, item_id: str, written: list[str]) -> None:
        if self.pipeline is None:
            return
        from ...pipeline import IMPORTED, Outcome

        self.pipeline.after_commit(Outcome(IMPORTED, item_id=item_id, resources=list(written)))


def backend() -> Backend:
    """The Backend of the running app."""
    return current_app.extensions[EXTENSION]
