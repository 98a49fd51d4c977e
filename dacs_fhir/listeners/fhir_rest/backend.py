"""What the REST layer writes through: the store, the raw inbox and the pipeline's after-commit hook.

Inbound FHIR writes follow the ingest rule of docs/architecture.md §1: the raw body is kept in the inbox
first, then applied in one store transaction, then the item is marked done or failed and the
committed change is handed to the rules stage.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from flask import Flask, current_app, request

from ...inbox import DONE, FAILED

if TYPE_CHECKING:
    from ...store import Transaction

log = logging.getLogger(__name__)

EXTENSION = "dacs_fhir.rest"


class Backend:
    """Flask extension: ``Backend(pipeline).init_app(app)``."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.store = pipeline.store
        self.inbox = pipeline.inbox

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self

    @contextmanager
    def write(self, body: bytes, **meta) -> Iterator["Transaction"]:
        """Keep ``body`` in the inbox, yield the pipeline's transaction, then mark the item with the
        resources it changed (failed with the reason when the block raised); the pipeline hands the
        committed changes to the rules stage."""
        meta = {"method": request.method, "path": request.path, **{k: v for k, v in meta.items() if v}}
        # one key per request: two identical bodies are two writes, each with its own outcome
        item = self.inbox.put("fhir", body, key=uuid.uuid4().hex, meta=meta)

        def mark(changes) -> None:
            self.inbox.mark(item.id, DONE, "", resources=[f"{c.resource_type}/{c.id}" for c in changes])

        try:
            with self.pipeline.transaction(source=item.id, mark=mark) as tx:
                yield tx
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            try:
                self.inbox.mark(item.id, FAILED, reason)
            except OSError:
                log.exception("could not mark inbox item %s failed", item.id)
            raise


def backend() -> Backend:
    """The Backend of the running app."""
    return current_app.extensions[EXTENSION]
