"""The server's base URL, the resource types it serves and valid logical ids (FHIR R4 http.html#general)."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from flask import request

from .capability import resource_types
from .outcomes import FhirError

BASE_PATH = "/fhir"
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # R4 datatypes.html#id


def base_url() -> str:
    """``http(s)://host[:port]/fhir`` as the client addressed it."""
    return request.url_root.rstrip("/") + BASE_PATH


def check_type(rtype: str) -> None:
    """404 for a resource type this server does not serve."""
    if rtype not in resource_types():
        raise FhirError(404, f"resource type {rtype} is not supported by this server", "not-supported")


def check_id(rid: str, what: str = "id") -> None:
    if not ID_PATTERN.match(rid):
        raise FhirError(400, f"{what} {rid!r} is not a valid FHIR id", "invalid")


def normalise_query(query: str | None) -> str | None:
    """A search given as text (``If-None-Exist``, a conditional URL) in one canonical encoding."""
    if not query:
        return None
    query = query.strip()
    if "?" in query:
        query = query.split("?", 1)[1]
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=False) if k not in ("_format", "_pretty")]
    if not pairs:
        return None
    return urlencode(pairs, safe="|:/,$")
