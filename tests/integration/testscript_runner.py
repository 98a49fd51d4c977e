"""A small FHIR R4 TestScript engine (testscript.html): fixtures, variables, setup / test /
teardown operations and asserts, run over HTTP against a FHIR server.

Covers what the RDS IG TestScripts use: operations read, vread, search, create, update, delete,
history, transaction, batch, capabilities; variables from ``defaultValue``, FHIRPath
``expression`` and XPath-like ``path`` over JSON, ``headerField``; asserts on ``responseCode``,
``response``, ``resource``, ``contentType``, ``headerField``, ``expression`` and ``path`` with the
TestScript operators. ``encodeRequestUrl`` percent-encodes parameter values.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote

import requests
from fhirpathpy import evaluate as fhirpath

NS = {"f": "http://hl7.org/fhir"}
FHIR_JSON = "application/fhir+json"
MIME = {"json": FHIR_JSON, "xml": "application/fhir+xml", "ttl": "text/turtle", "none": None}
RESPONSE_CODES = {  # testscript assert.response -> HTTP status
    "okay": 200, "created": 201, "noContent": 204, "notModified": 304, "bad": 400, "forbidden": 403,
    "notFound": 404, "methodNotAllowed": 405, "conflict": 409, "gone": 410, "preconditionFailed": 412,
    "unprocessable": 422,
}
VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _value(el: Optional[ET.Element], name: str) -> Optional[str]:
    child = el.find(f"f:{name}", NS) if el is not None else None
    return child.get("value") if child is not None else None


@dataclass
class Response:
    status: int
    headers: dict
    body: Optional[dict]


@dataclass
class Result:
    section: str  # setup | test name | teardown
    kind: str  # operation | assert
    description: str
    outcome: str  # pass | fail | warning | error
    message: str = ""


@dataclass
class Report:
    script: str
    results: list[Result] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.outcome in ("fail", "error") and r.section != "teardown"]

    def summary(self) -> str:
        return "\n".join(f"[{r.outcome}] {r.section}: {r.kind} {r.description} {r.message}".rstrip() for r in self.results)


class AssertionFailed(Exception):
    pass


def json_path(resource, path: str) -> list:
    """Values at an XPath-like ``path`` (``Bundle/entry/resource/Patient/id``, ``Observation/x/@value``) of a JSON resource."""
    steps = [s for s in path.strip("/").split("/") if s]
    nodes = [resource] if resource is not None else []
    if steps and isinstance(resource, dict) and steps[0] == resource.get("resourceType"):
        steps = steps[1:]
    for step in steps:
        found = []
        for node in nodes:
            if step == "@value":
                if not isinstance(node, (dict, list)):
                    found.append(node)
            elif isinstance(node, dict) and step[:1].isupper() and node.get("resourceType") == step:
                found.append(node)  # XML wraps a contained resource in an element named by its type
            elif isinstance(node, dict) and step in node:
                value = node[step]
                found.extend(value if isinstance(value, list) else [value])
        nodes = found
    return nodes


class TestScriptRunner:
    """Runs one TestScript XML file against ``base`` (the FHIR base URL)."""

    __test__ = False  # not a pytest test class

    def __init__(self, script: Path | str, base: str, fixtures: Optional[Callable[[str], dict]] = None,
                 variables: Optional[dict] = None, session: Optional[requests.Session] = None):
        self.path = Path(script)
        self.root = ET.parse(self.path).getroot()
        self.base = base.rstrip("/")
        self.fixture_loader = fixtures
        self.overrides = dict(variables or {})
        self.http = session or requests.Session()
        self.fixtures: dict[str, dict] = {}
        self.responses: dict[str, Response] = {}
        self.last: Optional[Response] = None
        self.variables = {_value(v, "name"): v for v in self.root.findall("f:variable", NS)}

    # ---- variables and fixtures
    def _source(self, source_id: Optional[str]):
        if source_id is None:
            return self.last.body if self.last else None
        if source_id in self.responses:
            return self.responses[source_id].body
        if source_id in self.fixtures:
            return self.fixtures[source_id]
        raise AssertionFailed(f"unknown sourceId {source_id}")

    def _response_of(self, source_id: Optional[str]) -> Optional[Response]:
        return self.responses.get(source_id) if source_id else self.last

    def variable(self, name: str) -> str:
        if name in self.overrides:
            return str(self.overrides[name])
        var = self.variables.get(name)
        if var is None:
            raise AssertionFailed(f"undefined variable {name}")
        source_id = _value(var, "sourceId")
        header = _value(var, "headerField")
        expression, path = _value(var, "expression"), _value(var, "path")
        if header:
            response = self._response_of(source_id)
            value = (response.headers.get(header) if response else None)
            return value if value is not None else (_value(var, "defaultValue") or "")
        if expression or path:
            body = self._source(source_id)
            values = fhirpath(body, expression) if expression else json_path(body, path)
            values = [v for v in values if v is not None and not isinstance(v, (dict, list))]
            if values:
                return str(values[0])
        return _value(var, "defaultValue") or ""

    def substitute(self, text: Optional[str]) -> Optional[str]:
        if text is None:
            return None
        return VARIABLE.sub(lambda m: self.variable(m.group(1)), text)

    def _load_fixtures(self) -> None:
        for fx in self.root.findall("f:fixture", NS):
            ref = _value(fx.find("f:resource", NS), "reference")
            if ref is None or self.fixture_loader is None:
                continue
            self.fixtures[fx.get("id")] = self.fixture_loader(ref)

    # ---- operations
    def _url(self, op: ET.Element) -> str:
        explicit = self.substitute(_value(op, "url"))
        if explicit:
            return explicit if "://" in explicit else f"{self.base}/{explicit.lstrip('/')}"
        code = _value(op.find("f:type", NS), "code")
        resource = _value(op, "resource") or ""
        params = self.substitute(_value(op, "params")) or ""
        if _value(op, "encodeRequestUrl") == "true":
            params = _encode(params)
        if code in ("transaction", "batch"):
            return self.base
        if code == "capabilities":
            return f"{self.base}/metadata"
        if code in ("read", "vread", "update", "delete", "history") and not params and _value(op, "targetId"):
            target = self._source(_value(op, "targetId"))
            params = f"/{target['id']}"
            if code == "history":
                params += "/_history"
        if not resource and _value(op, "targetId"):
            resource = self._source(_value(op, "targetId"))["resourceType"]
        return f"{self.base}/{resource}{params}"

    def run_operation(self, op: ET.Element) -> Response:
        code = _value(op.find("f:type", NS), "code")
        method = {"read": "GET", "vread": "GET", "search": "GET", "history": "GET", "capabilities": "GET",
                  "create": "POST", "transaction": "POST", "batch": "POST", "update": "PUT",
                  "updateCreate": "PUT", "delete": "DELETE"}.get(code) or (_value(op, "method") or "get").upper()
        headers = {"Accept": MIME.get(_value(op, "accept") or "json") or FHIR_JSON}
        for h in op.findall("f:requestHeader", NS):
            headers[_value(h, "field")] = self.substitute(_value(h, "value"))
        data = None
        source_id = _value(op, "sourceId")
        if method in ("POST", "PUT") and source_id:
            data = json.dumps(self._source(source_id)).encode()
            headers["Content-Type"] = MIME.get(_value(op, "contentType") or "json") or FHIR_JSON
        raw = self.http.request(method, self._url(op), data=data, headers=headers, timeout=60)
        try:
            body = raw.json() if raw.content else None
        except ValueError:
            body = None
        response = Response(raw.status_code, dict(raw.headers), body)
        self.last = response
        if _value(op, "responseId"):
            self.responses[_value(op, "responseId")] = response
        return response

    # ---- asserts
    def run_assert(self, a: ET.Element) -> None:
        source_id = _value(a, "sourceId")
        response = self._response_of(source_id) if source_id in self.responses or source_id is None else None
        operator = _value(a, "operator") or "equals"
        checks: list[tuple[object, Optional[str]]] = []
        if _value(a, "responseCode"):
            checks.append((response.status if response else None, _value(a, "responseCode")))
        if _value(a, "response"):
            checks.append((response.status if response else None, str(RESPONSE_CODES[_value(a, "response")])))
        if _value(a, "resource"):
            body = self._source(source_id)
            checks.append(((body or {}).get("resourceType"), _value(a, "resource")))
        if _value(a, "contentType"):
            got = (response.headers.get("Content-Type", "") if response else "").split(";")[0]
            checks.append((got, MIME.get(_value(a, "contentType"), _value(a, "contentType"))))
        if _value(a, "headerField"):
            checks.append((response.headers.get(_value(a, "headerField")) if response else None, self.substitute(_value(a, "value"))))
        if _value(a, "expression"):
            got = fhirpath(self._source(source_id), self.substitute(_value(a, "expression")))
            if _value(a, "value") is None and operator == "equals":
                if got != [True]:
                    raise AssertionFailed(f"{_value(a, 'expression')} evaluated to {got}")
            else:
                checks.append((got, self.substitute(_value(a, "value"))))
        if _value(a, "path"):
            checks.append((json_path(self._source(source_id), _value(a, "path")), self.substitute(_value(a, "value"))))
        if _value(a, "validateProfileId"):
            raise AssertionFailed("validateProfileId is not supported by this runner")
        for got, expected in checks:
            _compare(operator, got, expected)

    # ---- the script
    def _actions(self, section: Optional[ET.Element], name: str, report: Report) -> bool:
        if section is None:
            return True
        for action in section.findall("f:action", NS):
            op, a = action.find("f:operation", NS), action.find("f:assert", NS)
            if op is not None:
                desc = self.substitute(_value(op, "description")) or _value(op.find("f:type", NS), "code")
                try:
                    response = self.run_operation(op)
                    report.results.append(Result(name, "operation", desc, "pass", f"HTTP {response.status}"))
                except (AssertionFailed, requests.RequestException) as exc:
                    report.results.append(Result(name, "operation", desc, "error", str(exc)))
                    return False
            if a is not None:
                desc = _value(a, "description") or _value(a, "label") or ""
                try:
                    self.run_assert(a)
                    report.results.append(Result(name, "assert", desc, "pass"))
                except AssertionFailed as exc:
                    warning = _value(a, "warningOnly") == "true"
                    report.results.append(Result(name, "assert", desc, "warning" if warning else "fail", str(exc)))
                    if not warning and _value(a, "stopTestOnFail") != "false":
                        return False
        return True

    def run(self, teardown: bool = True) -> Report:
        report = Report(_value(self.root, "name") or self.path.stem)
        self._load_fixtures()
        created = []
        for fx in self.root.findall("f:fixture", NS):
            if _value(fx, "autocreate") == "true" and fx.get("id") in self.fixtures:
                res = self.http.post(f"{self.base}/{self.fixtures[fx.get('id')]['resourceType']}",
                                     json=self.fixtures[fx.get("id")], headers={"Accept": FHIR_JSON}, timeout=60)
                created.append((fx, res.json()))
        if self._actions(self.root.find("f:setup", NS), "setup", report):
            for test in self.root.findall("f:test", NS):
                self._actions(test, _value(test, "name") or "test", report)
        if teardown:
            self._actions(self.root.find("f:teardown", NS), "teardown", report)
            for fx, res in created:
                if _value(fx, "autodelete") == "true":
                    self.http.delete(f"{self.base}/{res['resourceType']}/{res['id']}", timeout=60)
        return report


def _encode(params: str) -> str:
    """Percent-encode the values of ``?a=b&c=d`` (or a ``/id`` path) as a client must."""
    if not params.startswith("?"):
        return "/".join(quote(p, safe="") for p in params.split("/"))
    pairs = []
    for pair in params[1:].split("&"):
        name, _, value = pair.partition("=")
        pairs.append(f"{quote(name, safe=':-_.')}={quote(value, safe='')}")
    return "?" + "&".join(pairs)


def _compare(operator: str, got, expected: Optional[str]) -> None:
    values = got if isinstance(got, list) else [got]
    texts = [str(v) for v in values if v is not None]
    ok = {
        "equals": lambda: expected in texts if expected is not None else bool(texts),
        "notEquals": lambda: expected not in texts,
        "in": lambda: any(t in (expected or "").split(",") for t in texts),
        "notIn": lambda: not any(t in (expected or "").split(",") for t in texts),
        "greaterThan": lambda: any(float(t) > float(expected) for t in texts),
        "lessThan": lambda: any(float(t) < float(expected) for t in texts),
        "empty": lambda: not texts,
        "notEmpty": lambda: bool(texts),
        "contains": lambda: any((expected or "") in t for t in texts),
        "notContains": lambda: not any((expected or "") in t for t in texts),
    }.get(operator)
    if ok is None:
        raise AssertionFailed(f"operator {operator} is not supported by this runner")
    if not ok():
        raise AssertionFailed(f"{operator} {expected!r} failed: got {texts}")
