"""What the REST layer refuses and how it says so: the request limits, the errors it raises, and
OperationOutcome bodies (FHIR R4 operationoutcome.html). Turned into responses in ``outcomes``."""
from __future__ import annotations

from typing import Optional

from ...jsontext import MAX_DEPTH

# HTTP status -> OperationOutcome issue type (R4 valueset issue-type)
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    500: "exception",
    501: "not-supported",
    503: "transient",
}


# Limits a request must keep; a request past one is a client error (400 naming the limit), never a
# 500 from deep recursion, an integer the database cannot hold or an SQL expression too large.
MAX_JSON_DEPTH = MAX_DEPTH  # nesting of objects and arrays in a request body
MAX_OFFSET = 2**31 - 1  # _getpagesoffset / _offset
MAX_VERSION = 2**63 - 1  # a version id: the database's 64-bit integer
SQLITE_LIMITS = ("expression tree is too large", "too many sql variables", "too many terms in compound select",
                 "parser stack overflow")


class FhirError(Exception):
    """An error the REST layer answers itself (bad request, unsupported type, …)."""

    def __init__(self, status: int, message: str, code: Optional[str] = None, expression: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code or ISSUE_CODES.get(status, "processing")
        self.expression = expression


class LimitExceeded(FhirError):
    """A request past one of the limits above (or the store's search limits): 400 ``too-costly``."""

    def __init__(self, message: str, expression: Optional[str] = None):
        super().__init__(400, message, "too-costly", expression)


def operation_outcome(message: str, severity: str = "error", code: str = "processing",
                      expression: Optional[str] = None) -> dict:
    """One-issue OperationOutcome (R4 operationoutcome.html)."""
    issue: dict = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def warnings_outcome(messages: list[str]) -> dict:
    """OperationOutcome listing search parameters that were ignored (search.mode ``outcome``)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": m} for m in messages],
    }
