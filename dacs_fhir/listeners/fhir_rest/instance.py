"""Instance-level interactions: read, vread, update, delete, instance history (FHIR R4 http.html)."""
from __future__ import annotations

from flask import request

from .addresses import base_url, check_id, check_type, check_version
from .backend import backend
from .blueprint import bp
from .history import HistoryRequest, history_bundle
from .outcomes import FhirError, operation_outcome
from .representation import (
    expect_type,
    fhir_response,
    parse_etag,
    prefer,
    read_json_body,
    resource_headers,
    write_reply,
)


@bp.get("/<rtype>/<rid>")
def read(rtype: str, rid: str):
    """GET [base]/[type]/[id]; ``If-None-Match`` answers 304 when the version is unchanged."""
    check_type(rtype)
    check_id(rid)
    with backend().store.transaction() as tx:
        resource = tx.read(rtype, rid)
    return _current(resource)


@bp.get("/<rtype>/<rid>/_history/<vid>")
def vread(rtype: str, rid: str, vid: str):
    """GET [base]/[type]/[id]/_history/[vid]."""
    check_type(rtype)
    check_id(rid)
    check_version(vid)
    with backend().store.transaction() as tx:
        resource = tx.vread(rtype, rid, vid)
    return fhir_response(resource, 200, resource_headers(resource, base_url()))


def _current(resource: dict):
    headers = resource_headers(resource, base_url())
    wanted = parse_etag(request.headers.get("If-None-Match"))
    if wanted and wanted == str((resource.get("meta") or {}).get("versionId")):
        return fhir_response(None, 304, headers)
    return fhir_response(resource, 200, headers)


@bp.put("/<rtype>/<rid>")
def update(rtype: str, rid: str):
    """PUT [base]/[type]/[id] with optional ``If-Match: W/"n"``; creates when the id is new."""
    check_type(rtype)
    check_id(rid)
    body = read_json_body()
    expect_type(body, rtype)
    if body.get("id") != rid:
        raise FhirError(400, f"resource id {body.get('id')!r} does not match the URL id {rid!r}", "invalid", f"{rtype}.id")
    if_match = parse_etag(request.headers.get("If-Match"))
    b = backend()
    with b.write(request.get_data(), if_match=if_match) as tx:
        out = tx.update(rtype, rid, body, if_match=if_match)
    status = 201 if out.status == "created" else 200
    return write_reply(out.resource, status, base_url(), location=status == 201)


@bp.delete("/<rtype>/<rid>")
def delete(rtype: str, rid: str):
    """DELETE [base]/[type]/[id]: 200 with an OperationOutcome (204 under ``Prefer: return=minimal``)."""
    check_type(rtype)
    check_id(rid)
    b = backend()
    with b.write(b"") as tx:
        tx.delete(rtype, rid)
    if prefer("return") == "minimal":
        return fhir_response(None, 204)
    return fhir_response(operation_outcome(f"{rtype}/{rid} deleted", "information", "informational"), 200)


@bp.get("/<rtype>/<rid>/_history")
def instance_history(rtype: str, rid: str):
    """GET [base]/[type]/[id]/_history."""
    check_type(rtype)
    check_id(rid)
    history = HistoryRequest()
    with backend().store.transaction() as tx:
        page = tx.history(rtype=rtype, rid=rid, since=history.since, count=history.count, offset=history.offset)
    base = base_url()
    return fhir_response(history_bundle(page, history, f"{base}/{rtype}/{rid}/_history", base))
