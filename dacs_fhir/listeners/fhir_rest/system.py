"""System-level interactions: capabilities, batch / transaction, system history
(FHIR R4 http.html#capabilities, #transaction, #history)."""
from __future__ import annotations

from flask import request

from .addresses import base_url
from .backend import backend
from .blueprint import bp
from .capability import capability_statement
from .history import HistoryRequest, history_bundle
from .outcomes import FhirError
from .representation import fhir_response, prefer, read_json_body


@bp.get("/metadata")
def metadata():
    """GET [base]/metadata: the CapabilityStatement."""
    return fhir_response(capability_statement(base_url()))


@bp.post("", strict_slashes=False)
def bundle():
    """POST [base] with a ``batch`` or ``transaction`` Bundle; answers its response Bundle."""
    body = read_json_body()
    if body["resourceType"] != "Bundle":
        raise FhirError(400, f"POST to the base takes a Bundle, not a {body['resourceType']}", "invalid", "resourceType")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError(400, f"Bundle.type must be batch or transaction, not {kind!r}", "invalid", "Bundle.type")
    representation = prefer("return") != "minimal"
    b = backend()
    with b.write(request.get_data(), bundle=kind) as tx:
        response = tx.process_bundle(body)  # entries carry the stored resources
    if not representation:
        for entry in response.get("entry", []):
            entry.pop("resource", None)
    return fhir_response(response, 200)


@bp.get("/_history")
def system_history():
    """GET [base]/_history."""
    history = HistoryRequest()
    with backend().store.transaction() as tx:
        page = tx.history(since=history.since, count=history.count, offset=history.offset)
    base = base_url()
    return fhir_response(history_bundle(page, history, f"{base}/_history", base))
