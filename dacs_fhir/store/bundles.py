"""Transaction and batch Bundles (FHIR R4 http.html#transaction): a transaction is all-or-nothing,
processed DELETE, POST, PUT, GET, with ``urn:uuid`` fullUrls and conditional references resolved;
batch entries succeed or fail each on its own."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, cast

import orjson

from . import errors, validation
from .results import Outcome, new_id

if TYPE_CHECKING:  # the transaction imports this module
    from .transaction import Transaction

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found", 409: "Conflict",
           410: "Gone", 412: "Precondition Failed", 422: "Unprocessable Entity", 500: "Internal Server Error",
           501: "Not Implemented"}


@dataclass
class Entry:
    index: int
    method: str
    url: str
    rtype: str
    rid: Optional[str]  # Type/<rid>
    query: Optional[str]  # Type?<query>
    vid: Optional[str]
    full_url: str
    resource: Optional[dict]
    if_none_exist: Optional[str]
    if_match: Optional[str]

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}] ({self.method} {self.url})"


def parse_url(url: str) -> tuple[str, Optional[str], Optional[str], Optional[str]]:
    """``[base/]Type[/id[/_history/vid]][?query]`` -> (type, id, query, vid)."""
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if part[:1].isupper() and part.isalnum():
            try:
                validation.model_class(part)
            except errors.InvalidResource:
                continue
            rest = parts[i + 1:]
            rid = rest[0] if rest and not rest[0].startswith(("_", "$")) else None
            vid = rest[2] if len(rest) >= 3 and rest[1] == "_history" else None
            return part, rid, (query or None) if "?" in url else None, vid
    raise errors.InvalidResource(f"request url {url!r} does not name a resource type", "Bundle.entry.request.url")


def _entry(i: int, raw: dict) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise errors.InvalidResource(f"Bundle.entry[{i}] has no request", f"Bundle.entry[{i}].request")
    req = raw["request"]
    method = str(req.get("method", "")).upper()
    if method not in ORDER:
        raise errors.InvalidResource(f"Bundle.entry[{i}].request.method {method!r} is not supported",
                                     f"Bundle.entry[{i}].request.method")
    url = req.get("url") or ""
    if method == "POST" and not url and isinstance(raw.get("resource"), dict):
        url = raw["resource"].get("resourceType", "")
    rtype, rid, query, vid = parse_url(url)
    e = Entry(i, method, url, rtype, rid, query, vid, raw.get("fullUrl") or "", raw.get("resource"),
              req.get("ifNoneExist"), req.get("ifMatch"))
    _check_ids(e)
    return e


_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # R4 datatypes.html#id
_MAX_VERSION = 2**63 - 1  # versions are 64-bit integers in the database


class InvalidEntry(errors.StoreError):
    """An entry its plain interaction would refuse with 400 (R4 http.html#update: ids)."""

    status = 400

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path


def _valid_id(value) -> bool:
    """R4's id pattern, without ``.`` and ``..`` (path segments, RFC 3986 §3.3)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None and value not in (".", "..")


def _check_ids(e: Entry) -> None:
    """The id checks of the plain interactions: the url's id and version, and a PUT's body id, which
    must be the url's (a conditional PUT's body id, if any, becomes the id of what it creates)."""
    for what, value in (("id", e.rid), ("version id", e.vid)):
        if value is not None and not _valid_id(value):
            raise InvalidEntry(f"{e.label}: {what} {value[:80]!r} is not a valid FHIR id", "Bundle.entry.request.url")
    if e.vid is not None and e.vid.isdigit() and (len(e.vid) > len(str(_MAX_VERSION)) or int(e.vid) > _MAX_VERSION):
        raise InvalidEntry(f"{e.label}: version id must be at most {_MAX_VERSION}", "Bundle.entry.request.url")
    if e.method != "PUT" or not isinstance(e.resource, dict):
        return
    body_id = e.resource.get("id")
    if body_id is not None and not _valid_id(body_id):
        raise InvalidEntry(f"{e.label}: resource id {str(body_id)[:80]!r} is not a valid FHIR id", "Bundle.entry.resource.id")
    if e.rid is not None and body_id != e.rid:
        raise InvalidEntry(f"{e.label}: resource id {str(body_id)[:80]!r} does not match the url id {e.rid!r}",
                           "Bundle.entry.resource.id")


def outcome_resource(message: str, status: int, path: Optional[str] = None) -> dict:
    issue: dict = {"severity": "error", "code": {404: "not-found", 409: "conflict", 412: "conflict", 410: "deleted"}.get(
        status, "invalid" if status < 500 else "exception"), "diagnostics": message}
    if path:
        issue["expression"] = [path]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


_MARKER = 10  # bytes of a fullUrl's JSON string that mark a part as maybe referring to it: '"urn:uuid:'


def _may_refer(part, markers: tuple[bytes, ...]) -> bool:
    """Whether the JSON text of ``part`` holds any of ``markers`` (True when orjson does not take it)."""
    try:
        text = orjson.dumps(part)
    except TypeError:
        return True
    for marker in markers:
        if marker in text:
            return True
    return False


class BundleProcessor:
    def __init__(self, tx: Transaction, validate: bool = True, flush: bool = True):
        self.tx = tx
        self.validate = validate
        self.flush = flush  # a transaction's writes are sent at its end (else left pending for the caller)
        self.ids: dict[str, str] = {}  # fullUrl -> Type/id
        self.conditional: dict[tuple[str, str], str] = {}  # (type, query) -> id, for in-bundle matches
        self._markers_for: Optional[int] = None
        self._marker_cache: tuple[bytes, ...] = ()

    def process(self, bundle: dict) -> dict:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise errors.InvalidResource("not a Bundle", "Bundle")
        kind = bundle.get("type")
        if kind not in ("transaction", "batch"):
            raise errors.InvalidResource(f"Bundle.type must be transaction or batch, not {kind!r}", "Bundle.type")
        raws = bundle.get("entry") or []
        responses = self._batch(raws) if kind == "batch" else self._transaction(raws)
        return {"resourceType": "Bundle", "id": new_id(), "type": f"{kind}-response", "entry": responses}

    # ---- transaction
    def _transaction(self, raws: list) -> list[dict]:
        entries = [_entry(i, raw) for i, raw in enumerate(raws)]
        seen = set()
        for e in entries:
            if e.full_url and e.full_url in seen:
                raise errors.InvalidResource(f"{e.label}: fullUrl {e.full_url} appears twice", "Bundle.entry.fullUrl")
            seen.add(e.full_url)
        ordered = sorted(entries, key=lambda e: (ORDER[e.method], e.index))
        criteria = [(e.rtype, c) for e in ordered
                    if e.method in ("POST", "PUT") and (c := e.if_none_exist if e.method == "POST" else e.query)]
        deletes = [e for e in ordered if e.method == "DELETE"]
        if deletes:  # the criteria are locked before anything is written (prefetch_matches locks them too)
            self.tx.lock_criteria(criteria)
        responses: list[Optional[dict]] = [None] * len(entries)
        for e in deletes:
            responses[e.index] = self._guard(e, self._delete)
        self.tx.prefetch_matches(criteria)
        planned = {e.index: self._guard(e, self._plan) for e in ordered if e.method in ("POST", "PUT")}
        for e in ordered:
            if e.method in ("POST", "PUT", "PATCH"):
                responses[e.index] = self._guard(e, lambda x: self._write(x, planned.get(x.index)))
            elif e.method in ("GET", "HEAD"):
                responses[e.index] = self._guard(e, self._get)
        if self.flush:
            self.tx.flush()
        return cast(list[dict], responses)  # every entry's method is one of those answered above

    @staticmethod
    def _guard(e: Entry, step):
        try:
            return step(e)
        except errors.StoreError as exc:
            exc.args = (f"{e.label}: {exc}",)
            raise

    def _plan(self, e: Entry) -> tuple[str, bool]:
        """The id an entry will have (assigned before any write, so references resolve), and whether it exists."""
        if e.resource is None or validation.resource_type(e.resource) != e.rtype:
            raise errors.InvalidResource("resource missing or of another type than the request url", "Bundle.entry.resource")
        rid, exists = None, False
        if e.method == "POST":
            if e.if_none_exist:
                found = self.tx.match(e.rtype, e.if_none_exist)
                if len(found) > 1:
                    raise errors.PreconditionFailed(f"ifNoneExist matches {len(found)} resources")
                rid, exists = (found[0], True) if found else (new_id(), False)
                self.conditional[(e.rtype, e.if_none_exist)] = rid
            else:
                rid = new_id()
        elif e.query is not None:
            found = self.tx.match(e.rtype, e.query)
            if len(found) > 1:
                raise errors.PreconditionFailed(f"conditional update matches {len(found)} resources")
            rid = found[0] if found else (e.resource.get("id") or self.tx.mint(e.rtype))
            self.conditional[(e.rtype, e.query)] = rid
        else:
            rid = e.rid
            if not rid:
                raise errors.InvalidResource("PUT needs Type/id or Type?query", "Bundle.entry.request.url")
        if e.full_url:
            self.ids[e.full_url] = f"{e.rtype}/{rid}"
        return rid, exists

    def _write(self, e: Entry, plan) -> dict:
        if e.method == "PATCH":
            raise errors.NotSupported("PATCH is not supported")
        rid, exists = plan
        assert e.resource is not None  # _plan checked it
        resource = self._resolve(e.resource)
        if e.method == "POST":
            if exists:
                return self._response(200, Outcome(self.tx.read(e.rtype, rid), "existing"))
            return self._response(201, self.tx.create(resource, rid=rid, validate=self.validate))
        out = self.tx.update(e.rtype, rid, {**resource, "id": rid}, if_match=e.if_match, validate=self.validate)
        return self._response(201 if out.status == "created" else 200, out)

    def _delete(self, e: Entry) -> dict:
        if e.query is not None:
            for rid in self.tx.match(e.rtype, e.query, limit=1000):
                self.tx.delete(e.rtype, rid)
        elif e.rid:
            try:
                self.tx.delete(e.rtype, e.rid)
            except errors.NotFound:
                pass  # deleting what is not there succeeds (R4 http.html#delete)
        else:
            raise errors.InvalidResource("DELETE needs Type/id or Type?query", "Bundle.entry.request.url")
        return {"response": {"status": "204 No Content"}}

    def _get(self, e: Entry) -> dict:
        if e.rid and e.vid:
            res = self.tx.vread(e.rtype, e.rid, e.vid)
        elif e.rid:
            res = self.tx.read(e.rtype, e.rid)
        else:
            from urllib.parse import parse_qsl

            params = parse_qsl(e.query or "", keep_blank_values=False)
            count = next((min(int(v) if len(v) < 20 else 1000, 1000) for k, v in params if k == "_count" and v.isascii() and v.isdigit()), 50)
            result = self.tx.search(e.rtype, [(k, v) for k, v in params if k != "_count"], count=count)
            res = {"resourceType": "Bundle", "type": "searchset",
                   **({"total": result.total} if result.total is not None else {}),
                   "entry": [{"resource": r, "search": {"mode": "match"}} for r in result.resources]
                   + [{"resource": r, "search": {"mode": "include"}} for r in result.included]}
        response = {"status": "200 OK"}
        if "meta" in res and res["resourceType"] != "Bundle":
            response["etag"] = f'W/"{res["meta"].get("versionId")}"'
        return {"resource": res, "response": response}

    def _response(self, status: int, out: Outcome) -> dict:
        res = out.resource
        version = res["meta"]["versionId"]
        return {"resource": res, "response": {
            "status": f"{status} {REASONS[status]}",
            "location": f"{res['resourceType']}/{res['id']}/_history/{version}",
            "etag": f'W/"{version}"', "lastModified": res["meta"]["lastUpdated"]}}

    def _resolve(self, resource: dict) -> dict:
        """Replace fullUrl and conditional references by ``Type/id`` everywhere in ``resource``; parts
        without any are kept as they are (not copied). Leaves are looked at in their container's loop,
        not by a call each: most of a resource is leaves, and a call per leaf doubled the walk's time.

        A list at the top level (components, identifiers, categories) is walked only when its JSON
        text could hold a reference: a string equal to a fullUrl is in the text as that fullUrl's JSON
        string, so the start of it (``"urn:uuid:``) is there too, and a conditional one needs a
        ``"reference"`` key. orjson writes a list in a tenth of the time a walk takes, and most of an
        Observation (its components) holds neither. Small parts (code, subject) are walked: a check
        costs about what their walk does."""
        ids = self.ids
        markers = self._markers()

        def leaf(key, value):
            new = ids.get(value, value)
            if key == "reference" and new is value and "?" in value and not value.startswith(("urn:", "#")):
                new = self._conditional_reference(value)
            return new

        def walk(node, top=False):  # a dict or a list; list items have int keys, never "reference"
            out = None
            for key, value in (node.items() if type(node) is dict else enumerate(node)):
                kind = type(value)
                if kind is str:
                    if value not in ids and key != "reference":
                        continue
                    new = leaf(key, value)
                elif kind is dict or kind is list:
                    if top and kind is list and not _may_refer(value, markers):
                        continue
                    new = walk(value)
                else:
                    continue
                if new is not value:
                    if out is None:
                        out = type(node)(node)
                    out[key] = new
            return node if out is None else out
        return walk(resource, top=True)

    def _markers(self) -> tuple[bytes, ...]:
        """What the JSON text of a part holding a reference to resolve must contain (see ``_resolve``)."""
        if self._markers_for != len(self.ids):  # fullUrls are only added (by _plan)
            self._marker_cache = (b'"reference"', *{orjson.dumps(url)[:_MARKER] for url in self.ids})
            self._markers_for = len(self.ids)
        return self._marker_cache

    def _conditional_reference(self, ref: str) -> str:
        rtype, _, query = ref.partition("?")
        if (rtype, query) in self.conditional:  # matched (and locked) by an entry of this bundle
            return f"{rtype}/{self.conditional[(rtype, query)]}"
        found = self.tx.match(rtype, query)
        if len(found) != 1:
            raise errors.PreconditionFailed(f"conditional reference {rtype}?… matches {len(found)} resources")
        return f"{rtype}/{found[0]}"

    # ---- batch
    def _batch(self, raws: list) -> list[dict]:
        responses = []
        for i, raw in enumerate(raws):
            checkpoint = self.tx.checkpoint()
            try:
                with self.tx.conn.begin_nested():
                    e = _entry(i, raw)
                    if e.method == "DELETE":
                        responses.append(self._delete(e))
                    elif e.method in ("GET", "HEAD"):
                        responses.append(self._get(e))
                    else:
                        responses.append(self._write(e, self._plan(e)))
                    self.tx.flush()
            except errors.StoreError as exc:
                self.tx.discard(checkpoint)
                status = exc.status
                responses.append({"response": {"status": f"{status} {REASONS.get(status, '')}".strip(),
                                               "outcome": outcome_resource(str(exc), status, getattr(exc, "path", None))}})
        return responses

