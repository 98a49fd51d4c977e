"""Content negotiation, request bodies and resource headers (FHIR R4 http.html#mime-type, #versioning).

JSON only: ``application/fhir+json`` (also ``application/json``, ``_format=json``). A client that
asks for XML alone gets 406; an XML body gets 415.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Optional

from flask import Response, request

from ...jsontext import nesting_depth
from .problems import MAX_JSON_DEPTH, FhirError, LimitExceeded, operation_outcome

FHIR_JSON = "application/fhir+json"
JSON_TYPES = (FHIR_JSON, "application/json", "application/json+fhir", "text/json")
XML_TYPES = ("application/fhir+xml", "application/xml", "application/xml+fhir", "text/xml")
FORMAT_ALIASES = {"json": FHIR_JSON, "xml": "application/fhir+xml", "html": "text/html", "text/html": "text/html"}


def _requested_format() -> Optional[str]:
    fmt = request.args.get("_format")
    if not fmt and request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        fmt = request.form.get("_format")
    if not fmt:
        return None
    return FORMAT_ALIASES.get(fmt.strip().lower(), fmt.strip().lower())


def response_mimetype() -> str:
    """The JSON flavour the client asked for (``_format`` wins over ``Accept``); 406 for XML only."""
    fmt = _requested_format()
    if fmt:
        if fmt.split(";")[0] in JSON_TYPES:
            return fmt.split(";")[0] if fmt.split(";")[0] != "text/json" else FHIR_JSON
        raise FhirError(406, f"_format {fmt} is not supported: this server speaks {FHIR_JSON}", "not-supported")
    accept = request.accept_mimetypes
    if not request.headers.get("Accept"):
        return FHIR_JSON
    best = accept.best_match([FHIR_JSON, "application/json"])  # */* and application/* match too
    if best:
        return best
    raise FhirError(406, f"none of the accepted types is supported: this server speaks {FHIR_JSON}", "not-supported")


def _pretty() -> bool:
    return (request.args.get("_pretty") or "").lower() == "true"


def fhir_response(body: Optional[dict], status: int = 200, headers: Optional[dict] = None, negotiate: bool = True) -> Response:
    """A JSON response in the negotiated FHIR mime type (errors never negotiate: they always answer)."""
    mimetype = FHIR_JSON
    if negotiate:
        mimetype = response_mimetype()
    else:
        try:
            mimetype = response_mimetype()
        except Exception:  # an error reply must go out even when the request itself is unreadable
            pass
    if body is None:
        resp = Response(b"", status=status)
        resp.headers.pop("Content-Type", None)
    else:
        text = json.dumps(body, indent=2 if _pretty() else None, ensure_ascii=False, separators=None if _pretty() else (",", ":"))
        resp = Response(text.encode("utf-8"), status=status, content_type=f"{mimetype};charset=utf-8")
    for key, value in (headers or {}).items():
        if value:
            resp.headers[key] = value
    return resp


_REFERENCE = re.compile(rb'"reference"\s*:\s*"((?:[^"\\]|\\.)*)"')


def check_reference_ids(raw: bytes) -> None:
    """400 when a reference (``Type/id``, a URL, or a conditional ``Type?query``) has ``.`` or ``..``
    as a path segment: they match R4's id pattern, but a client following the reference would
    leave the resource (RFC 3986 §5.2.4)."""
    if b"/." not in raw and b'".' not in raw and b"\\u002" not in raw:  # JSON escapes are \u (lower-case u)
        return
    for match in _REFERENCE.finditer(raw):
        try:
            reference = json.loads(b'"' + match.group(1) + b'"')
        except ValueError:
            continue  # not JSON: the parser says so
        if any(segment in (".", "..") for segment in reference.partition("?")[0].split("/")):
            shown = reference if len(reference) <= 80 else reference[:80] + "…"
            raise FhirError(400, f"reference {shown!r} has . or .. where an id belongs", "invalid", "reference")


def read_json_body() -> dict:
    """The request body as a JSON object: 415 for a non-JSON type, 400 for bad JSON."""
    mimetype = (request.mimetype or "").lower()
    if mimetype in XML_TYPES:
        raise FhirError(415, f"content type {mimetype} is not supported: send {FHIR_JSON}", "not-supported")
    if mimetype and mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise FhirError(415, f"content type {mimetype} is not supported: send {FHIR_JSON}", "not-supported")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise FhirError(400, "request body is empty", "required")
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nesting_depth(raw) > MAX_JSON_DEPTH:
        raise LimitExceeded(f"request body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels, "
                            "the server's limit")
    check_reference_ids(raw)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError(400, f"request body is not valid JSON: {exc}", "structure") from None
    if not isinstance(body, dict):
        raise FhirError(400, "request body is not a JSON object", "structure")
    if not isinstance(body.get("resourceType"), str):
        raise FhirError(400, "request body has no resourceType", "required", "resourceType")
    return body


def expect_type(body: dict, rtype: str) -> None:
    """400 when the body is not a ``rtype`` (R4 http.html#create)."""
    if body["resourceType"] != rtype:
        raise FhirError(400, f"resourceType {body['resourceType']} does not match the URL ({rtype})", "invalid", "resourceType")


def prefer(name: str) -> Optional[str]:
    """The value of one ``Prefer`` token (``return``, ``handling``) or None (RFC 7240)."""
    for header in request.headers.getlist("Prefer"):
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"').lower() or None
    return None


def parse_etag(value: Optional[str]) -> Optional[str]:
    """``W/"3"`` -> ``3`` (R4 http.html#concurrency)."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def etag_of(resource: dict) -> Optional[str]:
    vid = (resource.get("meta") or {}).get("versionId")
    return f'W/"{vid}"' if vid else None


def http_date(instant: Optional[str]) -> Optional[str]:
    """FHIR instant -> RFC 7231 HTTP-date for ``Last-Modified``."""
    if not instant:
        return None
    try:
        moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def resource_headers(resource: dict, base: str, location: bool = False) -> dict:
    """ETag, Last-Modified and (for creates) Location of one resource version."""
    meta = resource.get("meta") or {}
    headers = {"ETag": etag_of(resource), "Last-Modified": http_date(meta.get("lastUpdated"))}
    if location and resource.get("id"):
        url = f"{base}/{resource['resourceType']}/{resource['id']}"
        if meta.get("versionId"):
            url += f"/_history/{meta['versionId']}"
        headers["Location"] = url
        headers["Content-Location"] = url
    return headers


def write_reply(resource: dict, status: int, base: str, location: bool) -> Response:
    """The reply to a write, shaped by ``Prefer: return=`` (default: the representation)."""
    headers = resource_headers(resource, base, location)
    mode = prefer("return")
    if mode == "minimal":
        return fhir_response(None, status, headers)
    if mode == "operationoutcome":
        verb = "created" if status == 201 else "updated"
        body = operation_outcome(f"{resource['resourceType']}/{resource.get('id')} {verb}", "information", "informational")
        return fhir_response(body, status, headers)
    return fhir_response(resource, status, headers)
