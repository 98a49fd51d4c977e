"""History Bundles for instance, type and system history (FHIR R4 http.html#history)."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import request

from ...store import dates
from .outcomes import MAX_OFFSET, FhirError
from .searching import OFFSET_ALIASES, OFFSET_PARAM, SAFE, non_negative_int

DEFAULT_COUNT = 50
MAX_COUNT = 1000
# store method names -> the HTTP verb of the interaction that made the version
VERBS = {"create": "POST", "update": "PUT", "delete": "DELETE", "post": "POST", "put": "PUT"}


class HistoryRequest:
    """``_since``, ``_count`` and the page offset of one history request."""

    def __init__(self):
        self.since = None
        self.count = DEFAULT_COUNT
        self.offset = 0
        for name, value in request.args.items(multi=True):
            if name == "_since":
                self.since = _instant_param(name, value)
            elif name == "_count":
                self.count = non_negative_int(name, value, MAX_COUNT, clamp=True)
            elif name in OFFSET_ALIASES:
                self.offset = non_negative_int(name, value, MAX_OFFSET)
            elif name == "_at":
                raise FhirError(400, "_at is not supported on history; use _since", "not-supported", "_at")

    def page_url(self, url: str, offset: int) -> str:
        pairs = [("_since", self.since)] if self.since else []
        pairs.append(("_count", str(self.count)))
        if offset:
            pairs.append((OFFSET_PARAM, str(offset)))
        return f"{url}?{urlencode(pairs, safe=SAFE)}"


def _instant_param(name: str, value: str):
    """``_since``: a FHIR instant (or a date) the store can compare, else 400 (R4 http.html#history)."""
    if not value:
        return None
    try:
        dates.parse_range(value)
    except (ValueError, OverflowError):  # OverflowError: a range ending after 9999-12-31
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise FhirError(400, f"{name} must be an instant from 0001 to 9999-12-30, not {shown!r}", "invalid", name) from None
    return value


def history_bundle(page, history: HistoryRequest, url: str, base: str) -> dict:
    """A ``history`` Bundle of one page (store History: total, entries)."""
    links = [{"relation": "self", "url": history.page_url(url, history.offset)}]
    if history.count and history.offset + len(page.entries) < page.total:
        links.append({"relation": "next", "url": history.page_url(url, history.offset + history.count)})
    if history.offset and history.count:
        links.append({"relation": "previous", "url": history.page_url(url, max(history.offset - history.count, 0))})
    entries = []
    for e in page.entries:
        verb = VERBS.get(str(e.method).lower(), str(e.method).upper())
        instance = f"{e.rtype}/{e.rid}"
        entry: dict = {"fullUrl": f"{base}/{instance}"}
        if e.resource is not None:
            entry["resource"] = e.resource
        entry["request"] = {"method": verb, "url": e.rtype if verb == "POST" else instance}
        response: dict = {"status": {"POST": "201 Created", "DELETE": "204 No Content"}.get(verb, "200 OK")}
        if verb != "DELETE" and e.versionId:
            response["etag"] = f'W/"{e.versionId}"'
        if e.lastUpdated:
            response["lastModified"] = _instant(e.lastUpdated)
        entry["response"] = response
        entries.append(entry)
    bundle = {"resourceType": "Bundle", "type": "history", "total": page.total, "link": links}
    if entries:
        bundle["entry"] = entries
    return bundle


def _instant(value) -> str:
    return value if isinstance(value, str) else value.isoformat()

