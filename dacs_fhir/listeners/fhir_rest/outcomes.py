"""Every failure becomes an OperationOutcome with the right HTTP status, here and nowhere else.

FHIR R4 http.html#Status-Codes: 400 bad syntax / wrong resourceType, 404 unknown type or id,
405 method, 406/415 format, 409/412 version conflicts, 410 deleted, 413 too large, 422 invalid
resource (``issue.expression`` names the offending element).
"""
from __future__ import annotations

import logging
from typing import Optional

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from ...store.errors import StoreError
from .problems import (
    ISSUE_CODES,
    MAX_JSON_DEPTH,
    MAX_OFFSET,
    MAX_VERSION,
    SQLITE_LIMITS,
    FhirError,
    LimitExceeded,
    operation_outcome,
    warnings_outcome,
)
from .representation import fhir_response

__all__ = ["ISSUE_CODES", "MAX_JSON_DEPTH", "MAX_OFFSET", "MAX_VERSION", "SQLITE_LIMITS", "FhirError", "LimitExceeded",
           "operation_outcome", "register_error_handlers", "warnings_outcome"]

log = logging.getLogger(__name__)

def _respond(status: int, message: str, code: Optional[str] = None, expression: Optional[str] = None, headers=None):
    body = operation_outcome(message, code=code or ISSUE_CODES.get(status, "processing"), expression=expression)
    return fhir_response(body, status, headers=headers, negotiate=False)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


def handle_fhir_error(err: FhirError):
    return _respond(err.status, str(err), err.code, err.expression)


def handle_store_error(err: Exception):
    status = int(getattr(err, "status", 500))
    return _respond(status, _one_line(err), expression=getattr(err, "path", None) or None)


def handle_http_exception(err: HTTPException):
    status = err.code or 500
    messages = {
        404: f"no such endpoint: {request.path}",
        405: f"{request.method} is not allowed on {request.path}",
        413: "request body is larger than the server accepts",
    }
    headers = {}
    methods = getattr(err, "valid_methods", None)  # werkzeug's MethodNotAllowed
    if status == 405 and methods:
        headers["Allow"] = ", ".join(methods)
    return _respond(status, messages.get(status, err.description or err.name), headers=headers)


def handle_exception(err: Exception):
    from sqlalchemy.exc import OperationalError

    from ...errors import RejectedInput

    if isinstance(err, RejectedInput):
        return _respond(422, _one_line(err))
    if isinstance(err, RecursionError):  # a backstop: bodies are checked against MAX_JSON_DEPTH first
        return _respond(400, f"the request nests too deeply (limit {MAX_JSON_DEPTH} levels)", "too-costly")
    if isinstance(err, OverflowError):  # a backstop: numbers are checked against their bounds first
        return _respond(400, "a number in the request is too large for the server", "too-costly")
    if isinstance(err, OperationalError) and _too_large(err):
        return _respond(400, "the request is too large for the database (too many values or parameters)", "too-costly")
    if isinstance(err, OperationalError):
        log.error("database unavailable on %s %s: %s", request.method, request.path, type(err.orig).__name__)
        return _respond(503, "the database is unavailable; retry later", "transient", headers={"Retry-After": "5"})
    # no PHI in logs: the method and path (type and id) only, never the query string or body
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _respond(500, f"internal error ({type(err).__name__})", "exception")


def _too_large(err) -> bool:
    """SQLite's refusals of a statement past its compile-time limits (sqlite.org/limits.html)."""
    text = str(err.orig).lower()
    return any(limit in text for limit in SQLITE_LIMITS)


def register_error_handlers(app: Flask) -> None:
    """Answer every error of the app (also outside /fhir) with an OperationOutcome, never HTML."""
    app.register_error_handler(FhirError, handle_fhir_error)
    app.register_error_handler(StoreError, handle_store_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_exception)
