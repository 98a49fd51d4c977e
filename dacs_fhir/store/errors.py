"""Store errors; each carries the HTTP status the REST layer answers with (FHIR R4 http.html#Status-Codes)."""
from __future__ import annotations

from typing import Optional


class StoreError(Exception):
    """Base of store errors: ``.status`` is the HTTP code, ``str(err)`` a one-line message."""

    status = 500


class NotFound(StoreError):
    status = 404


class Gone(StoreError):
    """The resource was deleted (its last version is a tombstone)."""

    status = 410


class VersionConflict(StoreError):
    """``If-Match`` names a version that is not the current one."""

    status = 412


class PreconditionFailed(StoreError):
    """A conditional interaction matched more than one resource (or a reference matched none)."""

    status = 412


class Conflict(StoreError):
    status = 409


class InvalidResource(StoreError):
    """The resource does not parse as FHIR R4; ``.path`` names the offending element."""

    status = 422

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path


class InvalidSearch(StoreError):
    status = 400


class NotSupported(StoreError):
    status = 501
