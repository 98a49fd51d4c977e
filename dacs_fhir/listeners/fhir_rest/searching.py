"""Search over HTTP: parameters from the query string or a ``_search`` form, searchset Bundles
with ``total``, ``self``/``next``/``previous`` links and match / include / outcome entries
(FHIR R4 search.html, http.html#search, bundle.html#searchset)."""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from flask import request

from .outcomes import MAX_OFFSET, FhirError, LimitExceeded, warnings_outcome
from .representation import prefer

DEFAULT_COUNT = 20
MAX_COUNT = 1000
OFFSET_PARAM = "_getpagesoffset"
OFFSET_ALIASES = (OFFSET_PARAM, "_offset")
# handled here, never passed to the store
TRANSPORT_PARAMS = {"_format", "_pretty", "_count", *OFFSET_ALIASES}
# query-string characters kept readable in links (they are legal there, RFC 3986 §3.4)
SAFE = "|:/,$"


def request_params() -> list[tuple[str, str]]:
    """(name, value) pairs in order: query string, then a ``x-www-form-urlencoded`` body (R4 http.html#search)."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        if request.mimetype not in ("application/x-www-form-urlencoded", ""):
            raise FhirError(415, "POST _search takes an application/x-www-form-urlencoded body", "not-supported")
        pairs += list(request.form.items(multi=True))
    return pairs


def non_negative_int(name: str, value: str, maximum: int, clamp: bool = False) -> int:
    """A request's whole number from 0 to ``maximum`` (ASCII digits only); above it, ``maximum`` when
    ``clamp`` (``_count``: the server may return fewer, R4 search.html#count), else 400 naming the limit."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise FhirError(400, f"{name} must be a whole number from 0 to {maximum}, not {shown!r}", "invalid", name)
    if len(text) > len(str(maximum)) or int(text) > maximum:  # length first: int() of 10k digits is slow
        if clamp:
            return maximum
        raise LimitExceeded(f"{name} must be at most {maximum}, the server's limit", name)
    return int(text)


class SearchRequest:
    """One search: store parameters, page size and offset, strictness."""

    def __init__(self, pairs: list[tuple[str, str]], default_count: int = DEFAULT_COUNT):
        self.count = default_count
        self.offset = 0
        self.params: list[tuple[str, str]] = []
        for name, value in pairs:
            if name == "_count":
                self.count = non_negative_int(name, value, MAX_COUNT, clamp=True)
            elif name in OFFSET_ALIASES:
                self.offset = non_negative_int(name, value, MAX_OFFSET)
            elif name in TRANSPORT_PARAMS:
                continue
            elif value == "":
                continue  # an empty parameter is ignored (R4 search.html#errors)
            else:
                self.params.append((name, value))
        self.strict = prefer("handling") == "strict"
        # _summary=count: the total only, so no page of entries to link to (R4 search.html#summary)
        self.count_only = ("_summary", "count") in self.params

    def page_url(self, base_url: str, offset: int) -> str:
        pairs = list(self.params) + [("_count", str(self.count))]
        if offset:
            pairs.append((OFFSET_PARAM, str(offset)))
        return f"{base_url}?{urlencode(pairs, safe=SAFE)}"


def searchset(result, search: SearchRequest, type_url: str, base: str) -> dict:
    """The searchset Bundle of one page of ``result`` (a store SearchResult)."""
    links = [{"relation": "self", "url": search.page_url(type_url, search.offset)}]
    shown = len(result.resources)
    total: Optional[int] = result.total
    more = (search.offset + shown < total) if total is not None else shown >= search.count > 0
    paged = search.count > 0 and not search.count_only
    if more and paged:
        links.append({"relation": "next", "url": search.page_url(type_url, search.offset + search.count)})
    if search.offset > 0 and paged:
        links.append({"relation": "previous", "url": search.page_url(type_url, max(search.offset - search.count, 0))})
    entries = [_entry(r, base, "match") for r in result.resources]
    entries += [_entry(r, base, "include") for r in result.included]
    if result.warnings:
        entries.append({"resource": warnings_outcome(list(result.warnings)), "search": {"mode": "outcome"}})
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(resource: dict, base: str, mode: str) -> dict:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }
