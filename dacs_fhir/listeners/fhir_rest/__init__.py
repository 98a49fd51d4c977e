"""The FHIR R4 REST API at ``/fhir`` (FHIR R4 4.0.1 http.html, search.html; JSON only).

``init_app(app, backend)`` attaches the blueprint, the OperationOutcome error handlers and the
store/inbox/pipeline the routes write through. Modules: ``instance`` (read, vread, update,
delete, instance history), ``type_level`` (create, conditional update, search, type history),
``system`` (metadata, batch/transaction, system history).
"""
from __future__ import annotations

from typing import cast

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from . import instance, system, type_level  # noqa: F401  (their routes register on bp)
from .backend import Backend
from .blueprint import bp
from .outcomes import register_error_handlers


def init_app(app: Flask, backend: Backend) -> None:
    """Serve the FHIR API of ``backend`` from ``app``; requests over ``max_request_bytes`` get 413."""
    backend.init_app(app)
    app.config["MAX_CONTENT_LENGTH"] = backend.settings.max_request_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = backend.settings.max_request_bytes
    cast(DefaultJSONProvider, app.json).sort_keys = False  # Flask's default provider
    register_error_handlers(app)
    app.register_blueprint(bp)
