"""The FHIR REST API over a real socket (waitress on 127.0.0.1:0, temporary database):
interactions, headers, Prefer, errors as OperationOutcome, request size limit, the raw inbox."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests

FHIR_JSON = "application/fhir+json"
JSON_HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}


def start_api(settings):
    """Pipeline + app + waitress for ``settings``; returns a handle with ``base``, ``pipeline``, ``stop``."""
    from dacs_fhir.app import create_app
    from dacs_fhir.listeners.http_server import start_http
    from dacs_fhir.composition import build_pipeline

    pipeline = build_pipeline(settings)
    server = start_http(create_app(pipeline), "127.0.0.1", 0)
    return SimpleNamespace(base=f"{server.url}/fhir", pipeline=pipeline, server=server, stop=server.stop)


@pytest.fixture
def api(settings):
    handle = start_api(settings)
    yield handle
    handle.stop()


def post(api, path, resource, **headers):
    return requests.post(f"{api.base}/{path}", data=json.dumps(resource), headers={**JSON_HEADERS, **headers}, timeout=30)


def put(api, path, resource, **headers):
    return requests.put(f"{api.base}/{path}", data=json.dumps(resource), headers={**JSON_HEADERS, **headers}, timeout=30)


def get(api, path, **headers):
    return requests.get(f"{api.base}/{path}", headers={"Accept": FHIR_JSON, **headers}, timeout=30)


def patient(family="Testperson", system="urn:test:mrn", value=None):
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": value or uuid.uuid4().hex[:10]}],
        "name": [{"family": family, "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1970-01-02",
    }


def assert_outcome(resp, status, code=None):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    body = resp.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"][0]["severity"] == "error"
    if code:
        assert body["issue"][0]["code"] == code
    return body


def test_capability_statement_lists_what_is_served(api):
    resp = get(api, "metadata")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    cs = resp.json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1" and cs["kind"] == "instance"
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    by_type = {r["type"]: r for r in rest["resource"]}
    obs_params = {p["name"] for p in by_type["Observation"]["searchParam"]}
    assert {"identifier", "code", "patient", "device", "part-of", "date"} <= obs_params  # RDS IG
    assert {p["name"] for p in by_type["Patient"]["searchParam"]} >= {"identifier", "family", "given", "birthdate", "gender"}
    assert {"read", "vread", "create", "update", "delete", "search-type", "history-instance"} <= {
        i["code"] for i in by_type["Observation"]["interaction"]}
    # the statement names this server's base as the client addressed it
    assert cs["implementation"]["url"] == api.base


def test_create_read_vread_with_headers(api):
    sent = patient()
    sent["id"] = "client-chosen"  # ignored on create
    resp = post(api, "Patient", sent)
    assert resp.status_code == 201
    created = resp.json()
    rid = created["id"]
    assert rid != "client-chosen"
    assert resp.headers["Location"] == f"{api.base}/Patient/{rid}/_history/1"
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Last-Modified"].endswith("GMT")
    assert created["identifier"] == sent["identifier"] and created["meta"]["versionId"] == "1"

    read = get(api, f"Patient/{rid}")
    assert read.status_code == 200 and read.json()["name"] == sent["name"]
    assert read.headers["ETag"] == 'W/"1"'
    assert get(api, f"Patient/{rid}", **{"If-None-Match": 'W/"1"'}).status_code == 304
    assert get(api, f"Patient/{rid}/_history/1").json()["identifier"] == sent["identifier"]


def test_update_with_if_match_and_version_conflict(api):
    rid = post(api, "Patient", patient()).json()["id"]
    changed = {**patient(family="Changed"), "id": rid}
    ok = put(api, f"Patient/{rid}", changed, **{"If-Match": 'W/"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["meta"]["versionId"] == "2" and ok.headers["ETag"] == 'W/"2"'
    stale = put(api, f"Patient/{rid}", changed, **{"If-Match": 'W/"1"'})
    assert_outcome(stale, 412)
    assert get(api, f"Patient/{rid}").json()["name"][0]["family"] == "Changed"
    assert get(api, f"Patient/{rid}/_history/1").json()["name"][0]["family"] == "Testperson"


def test_update_as_create_and_id_mismatch(api):
    resp = put(api, "Patient/chosen-by-client", {**patient(), "id": "chosen-by-client"})
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"].startswith(f"{api.base}/Patient/chosen-by-client")
    assert_outcome(put(api, "Patient/other-id", {**patient(), "id": "chosen-by-client"}), 400)
    assert_outcome(put(api, "Patient/no-id-in-body", patient()), 400)


def test_conditional_create_and_conditional_update(api):
    mrn = uuid.uuid4().hex[:8]
    first = post(api, "Patient", patient(value=mrn), **{"If-None-Exist": f"identifier=urn:test:mrn|{mrn}"})
    again = post(api, "Patient", patient(value=mrn), **{"If-None-Exist": f"identifier=urn:test:mrn|{mrn}"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]

    other = uuid.uuid4().hex[:8]
    created = put(api, f"Patient?identifier=urn:test:mrn|{other}", patient(value=other))
    assert created.status_code == 201, created.text
    updated = put(api, f"Patient?identifier=urn:test:mrn|{other}", patient(family="Second", value=other))
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    assert updated.json()["meta"]["versionId"] == "2"
    # two matches: the condition is ambiguous
    post(api, "Patient", patient(value="dup"))
    post(api, "Patient", patient(value="dup"))
    assert_outcome(put(api, "Patient?identifier=urn:test:mrn|dup", patient(value="dup")), 412)


def test_delete_then_gone_and_history(api):
    rid = post(api, "Patient", patient()).json()["id"]
    put(api, f"Patient/{rid}", {**patient(family="Two"), "id": rid})
    deleted = requests.delete(f"{api.base}/Patient/{rid}", timeout=30)
    assert deleted.status_code == 200 and deleted.json()["resourceType"] == "OperationOutcome"
    assert_outcome(get(api, f"Patient/{rid}"), 410)
    assert get(api, f"Patient/{rid}/_history/2").json()["name"][0]["family"] == "Two"

    history = get(api, f"Patient/{rid}/_history").json()
    assert history["type"] == "history" and history["total"] == 3
    methods = sorted(e["request"]["method"] for e in history["entry"])
    assert methods == ["DELETE", "POST", "PUT"]
    assert all("resource" in e for e in history["entry"] if e["request"]["method"] != "DELETE")

    type_history = get(api, "Patient/_history").json()
    assert type_history["total"] >= 3
    system = get(api, "_history?_count=1").json()
    assert system["total"] >= 3 and len(system["entry"]) == 1
    assert any(link["relation"] == "next" for link in system["link"])


def test_prefer_return(api):
    minimal = post(api, "Patient", patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["Location"]
    outcome = post(api, "Patient", patient(), Prefer="return=OperationOutcome")
    assert outcome.status_code == 201 and outcome.json()["resourceType"] == "OperationOutcome"
    full = post(api, "Patient", patient(), Prefer="return=representation")
    assert full.json()["resourceType"] == "Patient"


def test_content_negotiation(api):
    assert get(api, "metadata?_format=json").headers["Content-Type"].startswith(FHIR_JSON)
    plain = requests.get(f"{api.base}/metadata", headers={"Accept": "application/json"}, timeout=30)
    assert plain.headers["Content-Type"].startswith("application/json")
    assert_outcome(requests.get(f"{api.base}/metadata", headers={"Accept": "application/fhir+xml"}, timeout=30), 406)
    assert_outcome(requests.get(f"{api.base}/metadata?_format=xml", timeout=30), 406)
    xml = requests.post(f"{api.base}/Patient", data="<Patient xmlns='http://hl7.org/fhir'/>",
                        headers={"Content-Type": "application/fhir+xml"}, timeout=30)
    assert_outcome(xml, 415)
    # application/json bodies are FHIR JSON too
    assert requests.post(f"{api.base}/Patient", json=patient(), timeout=30).status_code == 201


def test_errors_are_operation_outcomes(api):
    bad_json = requests.post(f"{api.base}/Patient", data="{not json", headers=JSON_HEADERS, timeout=30)
    assert_outcome(bad_json, 400)
    assert_outcome(post(api, "Patient", {"resourceType": "Observation", "status": "final"}), 400)
    assert_outcome(post(api, "Patient", {"name": "no resourceType"}), 400)
    assert_outcome(get(api, "NoSuchType/1"), 404)
    assert_outcome(get(api, "Patient/does-not-exist"), 404)
    assert_outcome(requests.patch(f"{api.base}/Patient/1", data="[]", timeout=30), 405)
    assert_outcome(requests.delete(f"{api.base}/Patient", timeout=30), 405)
    assert_outcome(requests.get(f"{api.base[:-5]}/not-fhir", timeout=30), 404)
    assert_outcome(requests.post(f"{api.base}", data=json.dumps({"resourceType": "Bundle", "type": "collection"}),
                                 headers=JSON_HEADERS, timeout=30), 400)


def test_invalid_resource_is_422_with_the_offending_path(api):
    resp = post(api, "Patient", {"resourceType": "Patient", "gender": "female", "birthDate": "not-a-date"})
    body = assert_outcome(resp, 422)
    assert "birthDate" in " ".join(body["issue"][0].get("expression", []))
    resp = post(api, "Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                     "valueQuantity": {"value": "twelve"}})
    body = assert_outcome(resp, 422)
    assert "valueQuantity" in " ".join(body["issue"][0].get("expression", []))


def test_request_over_the_size_limit_is_413(settings):
    settings.max_request_bytes = 4096
    handle = start_api(settings)
    try:
        big = patient()
        big["name"][0]["text"] = "x" * 8000
        assert_outcome(post(handle, "Patient", big), 413)
        assert post(handle, "Patient", patient()).status_code == 201
    finally:
        handle.stop()


def test_writes_are_kept_in_the_inbox_first(api):
    sent = patient()
    raw = json.dumps(sent).encode()
    resp = requests.post(f"{api.base}/Patient", data=raw, headers=JSON_HEADERS, timeout=30)
    rid = resp.json()["id"]
    items = list(api.pipeline.inbox.list(kind="fhir"))
    assert len(items) == 1 and items[0].status == "done"
    assert api.pipeline.inbox.read(items[0].id) == raw
    assert items[0].meta["method"] == "POST" and f"Patient/{rid}" in items[0].meta["resources"]
    stale = put(api, f"Patient/{rid}", {**sent, "id": rid}, **{"If-Match": 'W/"9"'})
    assert stale.status_code == 412
    failed = list(api.pipeline.inbox.list(status="failed", kind="fhir"))
    assert len(failed) == 1 and failed[0].reason


def test_concurrent_writes_and_reads(api):
    """Several clients at once: every create succeeds with its own id and reads back."""
    def create(i):
        return post(api, "Patient", patient(family=f"Concurrent{i}"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(create, range(24)))
    assert [r.status_code for r in created] == [201] * 24
    ids = {r.json()["id"] for r in created}
    assert len(ids) == 24
    with ThreadPoolExecutor(max_workers=8) as pool:
        reads = list(pool.map(lambda rid: get(api, f"Patient/{rid}"), ids))
    assert {r.json()["id"] for r in reads if r.status_code == 200} == ids


def test_server_stops_and_frees_its_port(settings):
    handle = start_api(settings)
    port = handle.server.port
    assert get(handle, "metadata").status_code == 200
    handle.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=5)


def _bundle(kind, mrn, bad_birth_date="not-a-date"):
    good = {**patient(family="Bundled", value=mrn)}
    bad = {**patient(family="Bundled"), "birthDate": bad_birth_date}
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": good, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": bad, "request": {"method": "POST", "url": "Patient"}},
    ]}


def test_transaction_is_all_or_nothing_batch_is_not(api):
    mrn = uuid.uuid4().hex[:8]
    failed = requests.post(api.base, data=json.dumps(_bundle("transaction", mrn)), headers=JSON_HEADERS, timeout=30)
    assert failed.status_code in (400, 422)
    assert failed.json()["resourceType"] == "OperationOutcome"
    found = get(api, f"Patient?identifier=urn:test:mrn|{mrn}").json()
    assert found["total"] == 0  # the valid entry was rolled back with the invalid one
    assert [i.status for i in api.pipeline.inbox.list(kind="fhir")] == ["failed"]

    batch = requests.post(api.base, data=json.dumps(_bundle("batch", mrn)), headers=JSON_HEADERS, timeout=30)
    assert batch.status_code == 200, batch.text
    statuses = [e["response"]["status"].split()[0] for e in batch.json()["entry"]]
    assert statuses[0] == "201" and statuses[1] in ("400", "422")
    assert get(api, f"Patient?identifier=urn:test:mrn|{mrn}").json()["total"] == 1


def test_transaction_response_carries_the_stored_resources(api):
    mrn = uuid.uuid4().hex[:8]
    bundle = _bundle("transaction", mrn)
    bundle["entry"] = bundle["entry"][:1]
    full = requests.post(api.base, data=json.dumps(bundle), headers=JSON_HEADERS, timeout=30).json()
    entry = full["entry"][0]
    assert entry["response"]["status"].startswith("201")
    assert entry["resource"]["identifier"][0]["value"] == mrn and entry["resource"]["meta"]["versionId"] == "1"
    minimal = requests.post(api.base, data=json.dumps(bundle), headers={**JSON_HEADERS, "Prefer": "return=minimal"}, timeout=30)
    assert minimal.status_code == 200 and "resource" not in minimal.json()["entry"][0]
