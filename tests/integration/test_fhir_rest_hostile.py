"""The FHIR REST listener against hostile or broken clients, over real sockets (waitress on
127.0.0.1:0): stalled connections, limits answered as 400 OperationOutcomes, ids, the Host header,
file modes. Each attack is followed by a read of what was stored before it, unchanged."""
from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import time
import uuid
from types import SimpleNamespace

import pytest
import requests
from peers import closed_by_server

FHIR_JSON = "application/fhir+json"
JSON_HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def start_api(settings):
    from dacs_fhir.app import create_app
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.listeners.http_server import start_http

    pipeline = build_pipeline(settings)
    server = start_http(create_app(pipeline), "127.0.0.1", 0)
    return SimpleNamespace(base=f"{server.url}/fhir", port=server.port, server=server, stop=server.stop)


@pytest.fixture
def api(settings):
    handle = start_api(settings)
    yield handle
    handle.stop()


def patient(family="Before"):
    return {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": uuid.uuid4().hex[:10]}],
            "name": [{"family": family}], "gender": "female", "birthDate": "1970-01-02"}


def raw(api, method, path, body=None, headers=None):
    """A request sent as written (http.client keeps ``..`` and odd Host headers; requests would not)."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={**JSON_HEADERS, **(headers or {})})
        resp = conn.getresponse()
        return SimpleNamespace(status=resp.status, headers=dict(resp.getheaders()), body=resp.read())
    finally:
        conn.close()


def outcome(resp, status, *words):
    """The OperationOutcome of ``resp``, checked for ``status`` and for ``words`` in its diagnostics."""
    assert resp.status == status, resp.body[:500]
    body = json.loads(resp.body)
    assert body["resourceType"] == "OperationOutcome"
    text = body["issue"][0]["diagnostics"]
    for word in words:
        assert word in text, text
    return body


@pytest.fixture
def before(api):
    """A Patient stored before the attack; ``check()`` reads it back unchanged (same version, content)."""
    created = requests.post(f"{api.base}/Patient", data=json.dumps(patient()), headers=JSON_HEADERS, timeout=30).json()

    def check():
        now = requests.get(f"{api.base}/Patient/{created['id']}", headers=JSON_HEADERS, timeout=30)
        assert now.status_code == 200
        assert now.json() == created and now.json()["meta"]["versionId"] == "1"
        history = requests.get(f"{api.base}/Patient/{created['id']}/_history", headers=JSON_HEADERS, timeout=30).json()
        assert history["total"] == 1
    return SimpleNamespace(resource=created, check=check)


# ---- slow clients
def _stall(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request line and headers, then nothing."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    return socks


def test_half_sent_requests_neither_lock_out_a_client_nor_stay_open(settings):
    settings.http_channel_timeout = 3.0
    settings.http_cleanup_interval = 0.5
    api = start_api(settings)
    socks = _stall(api.port, 110)
    try:
        started = time.monotonic()
        resp = requests.get(f"{api.base}/metadata", headers=JSON_HEADERS, timeout=10)
        assert resp.status_code == 200 and resp.json()["resourceType"] == "CapabilityStatement"
        assert time.monotonic() - started < 3.0  # answered at once, not after the stalled ones time out
        deadline = time.monotonic() + settings.http_channel_timeout + 6
        still_open = [s for s in socks if not closed_by_server(s, deadline - time.monotonic())]
        assert not still_open, f"{len(still_open)} stalled connections still open"
    finally:
        for s in socks:
            s.close()
        api.stop()


def test_stalled_connections_at_the_connection_limit_are_timed_out_for_a_waiting_client(settings):
    settings.http_connection_limit = 20
    settings.http_channel_timeout = 2.0
    settings.http_cleanup_interval = 0.5
    api = start_api(settings)
    socks = _stall(api.port, 30)  # more than the limit: the listener stops accepting until some go
    try:
        started = time.monotonic()
        resp = requests.get(f"{api.base}/metadata", headers=JSON_HEADERS, timeout=15)
        assert resp.status_code == 200
        assert time.monotonic() - started < 10.0
    finally:
        for s in socks:
            s.close()
        api.stop()


def test_headers_trickled_a_byte_at_a_time_are_cut_off(settings):
    import select

    settings.http_channel_timeout = 30.0  # never silent that long: only the header timeout can end them
    settings.http_header_timeout = 2.0
    settings.http_cleanup_interval = 0.5
    api = start_api(settings)
    socks = _stall(api.port, 5)
    try:
        closed, started = set(), time.monotonic()
        while len(closed) < len(socks) and time.monotonic() - started < 8:
            for s in socks:
                if s in closed:
                    continue
                try:
                    s.sendall(b"x")
                    readable, _, _ = select.select([s], [], [], 0)
                    if readable and s.recv(1024) == b"":
                        closed.add(s)
                except OSError:  # reset or broken pipe: closed by the server
                    closed.add(s)
            time.sleep(0.3)
        assert len(closed) == len(socks), f"{len(socks) - len(closed)} trickling connections still open"
        assert time.monotonic() - started >= settings.http_header_timeout - 0.5  # not before their time
        resp = requests.get(f"{api.base}/metadata", headers=JSON_HEADERS, timeout=10)
        assert resp.status_code == 200
    finally:
        for s in socks:
            s.close()
        api.stop()


def test_waitress_still_has_what_the_header_timeout_reads(settings):
    """Canary: the header sweep reads waitress internals (3.0.2); an upgrade that renames them fails here."""
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser

    api = start_api(settings)
    try:
        assert isinstance(api.server._server.active_channels, dict)
        assert hasattr(HTTPChannel, "will_close") and hasattr(HTTPChannel, "request")
        assert hasattr(HTTPRequestParser, "headers_finished")
        socks = _stall(api.port, 1)
        deadline = time.monotonic() + 5
        while not api.server._server.active_channels and time.monotonic() < deadline:
            time.sleep(0.05)
        channel = next(iter(api.server._server.active_channels.values()))
        while channel.request is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert isinstance(channel.request, HTTPRequestParser) and channel.request.headers_finished is False
        assert channel.requests == []
        socks[0].close()
    finally:
        api.stop()


def test_listener_settings_come_from_the_environment():
    from dacs_fhir.config import Settings
    from dacs_fhir.listeners.http_server import adjustments

    s = Settings.from_env({"DACS_HTTP_THREADS": "3", "DACS_HTTP_CHANNEL_TIMEOUT": "7.5", "DACS_HTTP_CONNECTION_LIMIT": "250",
                           "DACS_HTTP_CLEANUP_INTERVAL": "1", "DACS_HTTP_BACKLOG": "64", "DACS_HTTP_RECV_BYTES": "4096",
                           "DACS_HTTP_HEADER_TIMEOUT": "4"})
    assert s.http_header_timeout == 4.0
    adj = adjustments(s)
    assert (adj["threads"], adj["channel_timeout"], adj["connection_limit"]) == (3, 7.5, 250)
    assert (adj["cleanup_interval"], adj["backlog"], adj["recv_bytes"]) == (1.0, 64, 4096)
    assert adj["max_request_body_size"] > s.max_request_bytes


# ---- limits: 400 naming the limit, never 500 / 503
def test_deeply_nested_json_is_400_not_a_recursion_error(api, before):
    deep = b'{"resourceType":"Patient","extension":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    outcome(raw(api, "POST", "/fhir/Patient", deep), 400, "nests", "100 levels")
    bundle = b'{"resourceType":"Bundle","type":"transaction","entry":' + b"[{}," * 50_000 + b"{}" + b"]" * 50_000 + b"}"
    outcome(raw(api, "POST", "/fhir", bundle), 400, "100 levels")
    rid = before.resource["id"]
    body = json.dumps({**before.resource, "extension": []}).encode()[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    outcome(raw(api, "PUT", f"/fhir/Patient/{rid}", body), 400, "100 levels")
    before.check()


def test_nesting_within_the_limit_is_accepted(api):
    nested = {"resourceType": "Patient", "extension": [{"url": "urn:x", "extension": [{"url": "urn:y", "valueString": "[[[{{{"}]}]}
    assert raw(api, "POST", "/fhir/Patient", nested).status == 201


def test_huge_page_offsets_and_versions_are_400(api, before):
    rid = before.resource["id"]
    for path in ("/fhir/Patient?_getpagesoffset=99999999999999999999", "/fhir/Patient?_offset=2147483648",
                 f"/fhir/Patient/{rid}/_history?_getpagesoffset=99999999999999999999",
                 "/fhir/Patient/_history?_getpagesoffset=99999999999999999999",
                 "/fhir/_history?_offset=99999999999999999999"):
        outcome(raw(api, "GET", path), 400, "at most 2147483647")
    outcome(raw(api, "GET", f"/fhir/Patient/{rid}/_history/{10**23}"), 400, "version id", "at most")
    outcome(raw(api, "GET", "/fhir/Patient?_count=-1"), 400, "whole number")
    outcome(raw(api, "GET", "/fhir/Patient?_getpagesoffset=%EF%BC%95"), 400, "whole number")  # a full-width 5
    page = raw(api, "GET", "/fhir/Patient?_count=99999999999999999999")  # _count is lowered, not refused
    assert page.status == 200 and json.loads(page.body)["total"] == 1
    assert raw(api, "GET", f"/fhir/Patient/{rid}/_history/1").status == 200
    before.check()


def test_numbers_and_dates_past_their_range_are_400(api, before):
    for path, words in (("/fhir/Observation?value-quantity=1e999999999", ("invalid quantity",)),
                        ("/fhir/Observation?value-quantity=gtNaN", ("invalid quantity",)),
                        ("/fhir/Observation?date=9999-12-31", ("invalid date",)),
                        ("/fhir/Observation?date=ap0001-01-01", ("year 1 or 9999",)),
                        ("/fhir/Patient?_lastUpdated=ge9999-12-31", ("invalid date",)),
                        ("/fhir/_history?_since=9999-12-31", ("_since",))):
        outcome(raw(api, "GET", path), 400, *words)
    before.check()


def test_too_many_values_or_parameters_are_400_not_database_unavailable(api, before):
    many = ",".join(f"c{i}" for i in range(1000))
    outcome(raw(api, "GET", f"/fhir/Observation?code={many}"), 400, "at most 100")
    outcome(raw(api, "POST", "/fhir/Observation/_search", f"code={many}".encode(),
                {"Content-Type": "application/x-www-form-urlencoded"}), 400, "at most 100")
    outcome(raw(api, "GET", "/fhir/Patient?" + "&".join(f"family=a{i}" for i in range(51))), 400, "at most 50")
    outcome(raw(api, "POST", "/fhir/Patient", patient(), {"If-None-Exist": f"identifier={many}"}), 400, "at most 100")
    outcome(raw(api, "GET", f"/fhir/Patient?_id={many}"), 400, "at most 100")
    ok = raw(api, "GET", "/fhir/Observation?code=" + ",".join(f"c{i}" for i in range(100)))
    assert ok.status == 200
    before.check()


def test_batch_get_with_a_huge_count_is_answered(api, before):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient?_count=99999999999999999999"}},
        {"request": {"method": "GET", "url": f"Patient/{before.resource['id']}/_history/{10**23}"}}]}
    resp = raw(api, "POST", "/fhir", bundle)
    assert resp.status == 200
    entries = json.loads(resp.body)["entry"]
    assert entries[0]["response"]["status"] == "200 OK" and entries[0]["resource"]["total"] == 1
    assert entries[1]["response"]["status"].startswith("400")
    assert "at most" in entries[1]["response"]["outcome"]["issue"][0]["diagnostics"]
    before.check()


# ---- ids
def test_bundle_put_whose_body_id_differs_from_its_url_is_refused(api, before):
    rid = before.resource["id"]
    changed = {**before.resource, "id": "someone-else", "gender": "male"}
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5a1f3f8e-0000-4000-8000-000000000001", "resource": patient("New"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": changed, "request": {"method": "PUT", "url": f"Patient/{rid}"}}]}
    outcome(raw(api, "POST", "/fhir", transaction), 400, "does not match the url id")
    found = requests.get(f"{api.base}/Patient?family=New", headers=JSON_HEADERS, timeout=30).json()
    assert found["total"] == 0  # the whole transaction failed
    assert raw(api, "GET", "/fhir/Patient/someone-else").status == 404

    batch = {**transaction, "type": "batch"}
    resp = raw(api, "POST", "/fhir", batch)
    assert resp.status == 200
    entries = json.loads(resp.body)["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "400 Bad Request"
    assert "does not match the url id" in entries[1]["response"]["outcome"]["issue"][0]["diagnostics"]
    outcome(raw(api, "PUT", f"/fhir/Patient/{rid}", changed), 400, "does not match")  # the plain PUT, alike
    before.check()


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "x" * 65, "a b", "é"])
def test_ids_that_are_not_fhir_ids_are_refused_everywhere(api, before, bad):
    from urllib.parse import quote

    rid = before.resource["id"]
    path_id = quote(bad, safe=".")
    bad_body = {**patient("Bad"), "id": bad}
    if "/" not in bad:
        outcome(raw(api, "GET", f"/fhir/Patient/{path_id}"), 400, "not a valid FHIR id")
        outcome(raw(api, "PUT", f"/fhir/Patient/{path_id}", bad_body), 400, "not a valid FHIR id")
        outcome(raw(api, "DELETE", f"/fhir/Patient/{path_id}"), 400, "not a valid FHIR id")
        outcome(raw(api, "GET", f"/fhir/Patient/{rid}/_history/{path_id}"), 400, "not a valid FHIR id")
    outcome(raw(api, "PUT", "/fhir/Patient?identifier=urn:test:mrn|nobody", bad_body), 400, "not a valid FHIR id")
    for kind in ("transaction", "batch"):
        for url, resource in ((f"Patient/{bad}", bad_body), ("Patient?identifier=urn:test:mrn|nobody", bad_body)):
            bundle = {"resourceType": "Bundle", "type": kind,
                      "entry": [{"resource": resource, "request": {"method": "PUT", "url": url}}]}
            resp = raw(api, "POST", "/fhir", bundle)
            if kind == "transaction":
                outcome(resp, 400, "not a valid FHIR id")
            else:
                entry = json.loads(resp.body)["entry"][0]["response"]
                assert entry["status"] == "400 Bad Request", entry
        get = {"resourceType": "Bundle", "type": "batch",
               "entry": [{"request": {"method": "GET", "url": f"Patient/{rid}/_history/{bad}"}}]}
        if "/" not in bad:
            assert json.loads(raw(api, "POST", "/fhir", get).body)["entry"][0]["response"]["status"] == "400 Bad Request"
    found = requests.get(f"{api.base}/Patient?family=Bad", headers=JSON_HEADERS, timeout=30).json()
    assert found["total"] == 0
    before.check()


def test_references_with_dot_segments_are_refused(api, before):
    rid = before.resource["id"]
    for reference in ("Patient/..", "Patient/.", "Patient/\\u002e\\u002e", "http://elsewhere/fhir/Patient/../Observation/1"):
        body = ('{"resourceType":"Observation","status":"final","code":{"text":"x"},'
                f'"subject":{{"reference":"{reference}"}}}}').encode()
        outcome(raw(api, "POST", "/fhir/Observation", body), 400, "where an id belongs")
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {**before.resource, "gender": "male",
                          "link": [{"other": {"reference": reference.replace("\\u002e", ".")}, "type": "seealso"}]},
             "request": {"method": "PUT", "url": f"Patient/{rid}"}}]}
        outcome(raw(api, "POST", "/fhir", bundle), 400, "where an id belongs")
    fine = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": f"Patient/{rid}"}}
    assert raw(api, "POST", "/fhir/Observation", fine).status == 201
    before.check()


# ---- Host header and base URL
def test_links_use_the_configured_base_never_the_host_header(settings, tmp_path):
    settings.base_url = "https://dacs.example.org"
    api = start_api(settings)
    try:
        created = raw(api, "POST", "/fhir/Patient", patient("Linked"), {"Host": "evil.example"})
        assert created.status == 201
        assert created.headers["Location"].startswith("https://dacs.example.org/fhir/Patient/")
        raw(api, "POST", "/fhir/Patient", patient("Linked"))
        page = raw(api, "GET", "/fhir/Patient?family=Linked&_count=1", headers={"Host": "evil.example"})
        text = page.body.decode()
        assert page.status == 200 and "evil.example" not in text
        bundle = json.loads(text)
        assert {link["relation"] for link in bundle["link"]} == {"self", "next"}
        assert all(link["url"].startswith("https://dacs.example.org/fhir/Patient?") for link in bundle["link"])
        assert bundle["entry"][0]["fullUrl"].startswith("https://dacs.example.org/fhir/Patient/")
        history = raw(api, "GET", "/fhir/Patient/_history", headers={"Host": "evil.example"})
        assert "evil.example" not in history.body.decode()
        meta = json.loads(raw(api, "GET", "/fhir/metadata", headers={"Host": "evil.example"}).body)
        assert meta["implementation"]["url"] == "https://dacs.example.org/fhir"
    finally:
        api.stop()


def test_without_a_base_url_a_foreign_host_header_gets_the_bound_address(api):
    created = raw(api, "POST", "/fhir/Patient", patient("Loop"), {"Host": "evil.example:80"})
    assert created.headers["Location"].startswith(f"http://127.0.0.1:{api.port}/fhir/Patient/")
    page = raw(api, "GET", "/fhir/Patient?family=Loop", headers={"Host": "evil.example"})
    assert "evil.example" not in page.body.decode()
    local = raw(api, "GET", "/fhir/Patient?family=Loop", headers={"Host": f"localhost:{api.port}"})
    assert json.loads(local.body)["link"][0]["url"].startswith(f"http://localhost:{api.port}/fhir/")


def test_a_non_loopback_bind_without_a_base_url_refuses_to_start(settings):
    from dacs_fhir.app import create_app
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.config import Settings
    from dacs_fhir.listeners.http_server import HttpServer

    app = create_app(build_pipeline(settings))
    with pytest.raises(ValueError, match="DACS_BASE_URL"):
        HttpServer(app, "0.0.0.0", 0)  # refused before any socket is opened
    with pytest.raises(ValueError, match="DACS_BASE_URL"):
        Settings.from_env({"DACS_BASE_URL": "dacs.example.org"})
    assert Settings.from_env({"DACS_BASE_URL": "https://dacs.example.org/fhir/"}).base_url == "https://dacs.example.org"


# ---- files
def test_data_folder_is_0700_and_the_sqlite_files_0600(tmp_path):
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.config import Settings

    data = tmp_path / "fresh" / "data"
    settings = Settings.from_env({"DACS_DATA_DIR": str(data), "DACS_HTTP": "127.0.0.1:0"})
    settings.database_url = f"sqlite:///{data / 'dacs.sqlite'}"  # the embedded default, whatever the environment
    old = os.umask(0o002)
    try:
        pipeline = build_pipeline(settings)
        with pipeline.store.transaction() as tx:
            tx.create(patient())
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("dacs.sqlite", "dacs.sqlite-wal", "dacs.sqlite-shm"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    pipeline.store.dispose()


# ---- _summary=count
def test_summary_count_has_a_total_and_no_next_link(api, before):
    for _ in range(3):
        raw(api, "POST", "/fhir/Patient", patient("Counted"))
    resp = raw(api, "GET", "/fhir/Patient?family=Counted&_summary=count&_count=1")
    bundle = json.loads(resp.body)
    assert resp.status == 200 and bundle["total"] == 3
    assert [link["relation"] for link in bundle["link"]] == ["self"]
    assert "entry" not in bundle
    paged = json.loads(raw(api, "GET", "/fhir/Patient?family=Counted&_count=1").body)
    assert "next" in {link["relation"] for link in paged["link"]}
    before.check()


# ---- the last line of defence: errors that escape the checks above still answer 400, not 500
@pytest.mark.parametrize("exc, words", [
    (RecursionError("maximum recursion depth exceeded"), "nests too deeply"),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), "too large"),
])
def test_escaped_limit_errors_are_400_outcomes(exc, words):
    from flask import Flask

    from dacs_fhir.listeners.fhir_rest.outcomes import register_error_handlers

    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/fhir/boom")
    def boom():
        raise exc

    resp = app.test_client().get("/fhir/boom")
    assert resp.status_code == 400
    assert words in resp.get_json()["issue"][0]["diagnostics"]


def test_sqlite_statement_limits_are_400_and_a_lost_database_stays_503():
    import sqlite3

    from flask import Flask
    from sqlalchemy.exc import OperationalError

    from dacs_fhir.listeners.fhir_rest.outcomes import register_error_handlers

    app = Flask(__name__)
    register_error_handlers(app)
    errors = {"big": sqlite3.OperationalError("Expression tree is too large (maximum depth 1000)"),
              "gone": sqlite3.OperationalError("unable to open database file")}

    @app.get("/fhir/<kind>")
    def fail(kind):
        raise OperationalError("SELECT …", {}, errors[kind])

    client = app.test_client()
    assert client.get("/fhir/big").status_code == 400
    assert client.get("/fhir/gone").status_code == 503


def test_serve_on_a_non_loopback_address_without_a_base_url_exits_with_one_line(tmp_path):
    """The refusal reaches an operator as one line on stderr and exit code 2, not a traceback."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DACS_")}
    env.update(DACS_DATA_DIR=str(tmp_path / "data"), DACS_HTTP="0.0.0.0:0", DACS_DICOM="127.0.0.1:0",
               DACS_MLLP="127.0.0.1:0")
    run = subprocess.run([sys.executable, "-m", "dacs_fhir", "serve", "--no-dicom", "--no-mllp"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "dacs-fhir: DACS_BASE_URL must be set" in run.stderr
