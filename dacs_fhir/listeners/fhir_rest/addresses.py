"""The server's base URL, the resource types it serves and valid logical ids (FHIR R4 http.html#general)."""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import current_app, request

from ..http_server import is_loopback
from .capability import resource_types
from .outcomes import MAX_VERSION, FhirError, LimitExceeded

BASE_PATH = "/fhir"
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # R4 datatypes.html#id
NOT_IDS = (".", "..")  # match the pattern, but are path segments, not names (RFC 3986 §3.3)


def base_url() -> str:
    """The FHIR base put into ``fullUrl``, ``Location`` and paging links: ``DACS_BASE_URL`` + ``/fhir``.

    Unset (the listener then binds loopback only, see http_server): the host the client named when
    it is a loopback name, else the bound address; a ``Host`` header naming another machine (DNS
    rebinding, a forged header) never reaches a link."""
    settings = current_app.config.get("DACS_SETTINGS")
    if settings is not None and settings.base_url:
        return settings.base_url + BASE_PATH
    if is_loopback(_host_name(request.host)):
        return request.url_root.rstrip("/") + BASE_PATH
    host = settings.http[0] if settings is not None else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{request.environ.get('SERVER_PORT', '80')}{BASE_PATH}"


def _host_name(host: str) -> str:
    """The name of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``); empty when unreadable."""
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""


def check_type(rtype: str) -> None:
    """404 for a resource type this server does not serve."""
    if rtype not in resource_types():
        raise FhirError(404, f"resource type {rtype} is not supported by this server", "not-supported")


def check_id(rid: str, what: str = "id") -> None:
    """400 for a logical id outside R4's ``[A-Za-z0-9\\-.]{1,64}``, or ``.`` / ``..``."""
    if not isinstance(rid, str) or not ID_PATTERN.fullmatch(rid) or rid in NOT_IDS:
        shown = rid if isinstance(rid, str) and len(rid) <= 80 else f"{str(rid)[:80]}…"
        raise FhirError(400, f"{what} {shown!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}}, not . or ..)", "invalid")


def check_version(vid: str) -> None:
    """400 for a version id that is no valid id, or a number past the database's integers."""
    check_id(vid, "version id")
    if vid.isdigit() and (len(vid) > len(str(MAX_VERSION)) or int(vid) > MAX_VERSION):
        raise LimitExceeded(f"version id must be at most {MAX_VERSION}, the server's limit")


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
