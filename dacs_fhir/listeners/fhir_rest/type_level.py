"""Type-level interactions: create, conditional update, search (GET and POST ``_search``),
type history (FHIR R4 http.html#create, #cond-update, #search, #history)."""
from __future__ import annotations

from flask import request

from .addresses import base_url, check_id, check_type, normalise_query
from .backend import backend
from .blueprint import bp
from .history import HistoryRequest, history_bundle
from .outcomes import FhirError
from .representation import expect_type, fhir_response, read_json_body, write_reply
from .searching import SearchRequest, request_params, searchset


@bp.post("/<rtype>")
def create(rtype: str):
    """POST [base]/[type], conditional with ``If-None-Exist``: 201 created, 200 when one matched."""
    check_type(rtype)
    body = read_json_body()
    expect_type(body, rtype)
    body.pop("id", None)  # the server assigns the id of a created resource
    if_none_exist = normalise_query(request.headers.get("If-None-Exist"))
    b = backend()
    with b.write(request.get_data(), if_none_exist=if_none_exist) as tx:
        out = tx.create(body, if_none_exist=if_none_exist)
    created = out.status == "created"
    return write_reply(out.resource, 201 if created else 200, base_url(), location=created)


@bp.put("/<rtype>")
def conditional_update(rtype: str):
    """PUT [base]/[type]?[search]: 0 matches create, 1 updates, more are 412."""
    check_type(rtype)
    query = normalise_query(request.query_string.decode("utf-8", "replace"))
    if not query:
        raise FhirError(400, "PUT needs a resource id in the URL or search parameters (conditional update)", "required")
    body = read_json_body()
    expect_type(body, rtype)
    if "id" in body:  # with no match, the resource is created under it
        check_id(body["id"], "resource id")
    b = backend()
    with b.write(request.get_data(), condition=query) as tx:
        out = tx.conditional_update(rtype, query, body)
    status = 201 if out.status == "created" else 200
    return write_reply(out.resource, status, base_url(), location=status == 201)


@bp.get("/<rtype>")
def search(rtype: str):
    """GET [base]/[type]?params."""
    return _search(rtype)


@bp.post("/<rtype>/_search")
def search_post(rtype: str):
    """POST [base]/[type]/_search with an application/x-www-form-urlencoded body."""
    return _search(rtype)


def _search(rtype: str):
    check_type(rtype)
    wanted = SearchRequest(request_params())
    with backend().store.transaction() as tx:
        result = tx.search(rtype, wanted.params, count=wanted.count, offset=wanted.offset, strict=wanted.strict)
    base = base_url()
    return fhir_response(searchset(result, wanted, f"{base}/{rtype}", base))


@bp.get("/<rtype>/_history")
def type_history(rtype: str):
    """GET [base]/[type]/_history."""
    check_type(rtype)
    history = HistoryRequest()
    with backend().store.transaction() as tx:
        page = tx.history(rtype=rtype, since=history.since, count=history.count, offset=history.offset)
    base = base_url()
    return fhir_response(history_bundle(page, history, f"{base}/{rtype}/_history", base))
