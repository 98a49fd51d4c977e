"""Store: transaction and batch Bundles (FHIR R4 http.html#transaction), incl. the RDS IG sample bundle."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from dacs_fhir.store import Store, errors

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
RDS_SAMPLE = CORPUS / "fhir" / "rds-ig-bundle-sample.json"


def entry(method, url, resource=None, full_url=None, **request):
    e = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        e["resource"] = resource
    if full_url:
        e["fullUrl"] = full_url
    return e


def bundle(kind, *entries):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


PAT = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "77"}], "name": [{"family": "Roentgen"}]}


def obs(subject_ref: str, code: str = "73569-6") -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject_ref}, "focus": [{"reference": subject_ref}]}


def location_id(response_entry) -> str:
    return response_entry["response"]["location"].split("/")[1]


def test_transaction_resolves_urn_uuid_references_everywhere(store):
    b = bundle("transaction",
               entry("POST", "Observation", obs("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")),
               entry("POST", "Patient", PAT, "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"))
    with store.transaction() as tx:
        resp = tx.process_bundle(b)
    assert resp["type"] == "transaction-response"
    assert [e["response"]["status"] for e in resp["entry"]] == ["201 Created", "201 Created"]
    pid = location_id(resp["entry"][1])
    with store.transaction() as tx:
        o = tx.read("Observation", location_id(resp["entry"][0]))
        assert o["subject"]["reference"] == o["focus"][0]["reference"] == f"Patient/{pid}"
        assert tx.search("Observation", [("patient", pid)]).total == 1


@pytest.mark.parametrize("patient_url", ["urn:uuid:0d6f1c1e-5b9a-4f61-a4a1-6f1d2c3b4a50",
                                         "http://example.org/fhir/Patient/0d6f1c1e"])
def test_references_are_resolved_as_values_only_not_inside_texts(store, patient_url):
    """fullUrls (urn: or absolute) are replaced as whole string values, never inside a text."""
    mrn = f"urn:mrn-{len(patient_url)}"
    narrative = f'<div xmlns="http://www.w3.org/1999/xhtml">see "{patient_url}", "reference":"Patient?identifier=x|y" \\ é</div>'
    o = {**obs(patient_url), "text": {"status": "generated", "div": narrative},
         "hasMember": [{"reference": f"Patient?identifier={mrn}|88"}],  # conditional: matched below
         "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"}],
         "note": [{"text": patient_url}]}  # a string value equal to a fullUrl is replaced wherever it is
    b = bundle("transaction", entry("POST", "Observation", o),
               entry("POST", "Patient", {**PAT, "identifier": [{"system": mrn, "value": "88"}]}, patient_url,
                     ifNoneExist=f"identifier={mrn}|88"))
    with store.transaction() as tx:
        resp = tx.process_bundle(b)
        stored = tx.read("Observation", location_id(resp["entry"][0]))
    pid = location_id(resp["entry"][1])
    assert stored["subject"]["reference"] == stored["focus"][0]["reference"] == f"Patient/{pid}"
    assert stored["hasMember"] == [{"reference": f"Patient/{pid}"}]
    assert stored["note"] == [{"text": f"Patient/{pid}"}]
    assert stored["text"]["div"] == narrative and stored["identifier"] == o["identifier"]


@pytest.mark.parametrize("patient_url", ["urn:uuid:3c1f4e2a-7d9b-4c1e-8f3a-2b6d5e4c3a21",
                                         "https://example.org/fhir/Patient/3c1f4e2a"])
def test_references_deep_in_lists_are_resolved(store, patient_url):
    """Parts without a reference are skipped by their JSON text; one in a component's extension is not."""
    mrn = "urn:mrn:deep"
    component = {"code": {"text": "x"}, "valueQuantity": {"value": 1, "unit": "mGy"},
                 "extension": [{"url": "http://example.org/who", "valueReference": {"reference": patient_url}}]}
    plain = {"code": {"text": f"not {patient_url}"}, "valueQuantity": {"value": 2 ** 70}}  # beyond orjson's integers
    o = {**obs("urn:uuid:ffffffff-0000-4000-8000-000000000000"), "component": [plain, component],
         "hasMember": [{"reference": f"Patient?identifier={mrn}|5"}]}
    b = bundle("transaction", entry("POST", "Observation", o),
               entry("POST", "Patient", {**PAT, "identifier": [{"system": mrn, "value": "5"}]}, patient_url,
                     ifNoneExist=f"identifier={mrn}|5"),
               entry("POST", "Device", {"resourceType": "Device"}, "urn:uuid:ffffffff-0000-4000-8000-000000000000"))
    with store.transaction() as tx:
        resp = tx.process_bundle(b)
        stored = tx.read("Observation", location_id(resp["entry"][0]))
    pid, did = location_id(resp["entry"][1]), location_id(resp["entry"][2])
    assert stored["subject"]["reference"] == f"Device/{did}"
    assert stored["component"][1]["extension"][0]["valueReference"] == {"reference": f"Patient/{pid}"}
    assert stored["component"][0] == plain and stored["hasMember"] == [{"reference": f"Patient/{pid}"}]


def test_transaction_is_all_or_nothing(store):
    bad = bundle("transaction", entry("POST", "Patient", PAT),
                 entry("POST", "Observation", {"resourceType": "Observation", "code": {}}))
    with pytest.raises(errors.InvalidResource) as err:
        with store.transaction() as tx:
            tx.process_bundle(bad)
    assert "Bundle.entry[1]" in str(err.value) and err.value.path == "Observation.status"
    with store.transaction() as tx:
        assert tx.search("Patient", []).total == 0


def test_transaction_order_and_conditionals(store):
    with store.transaction() as tx:
        old = tx.create({"resourceType": "Patient", "name": [{"family": "Old"}]}).resource["id"]
        existing = tx.create(PAT).resource["id"]
    b = bundle("transaction",
               entry("GET", f"Patient?_id={old}"),
               entry("POST", "Patient", PAT, "urn:uuid:0b5ba8a8-5a3f-4a47-9b0a-1a8c7a4e1a01", ifNoneExist="identifier=urn:mrn|77"),
               entry("PUT", "Observation?identifier=urn:x|1",
                     {**obs("Patient?identifier=urn:mrn|77"), "identifier": [{"system": "urn:x", "value": "1"}]}),
               entry("DELETE", f"Patient/{old}"))
    with store.transaction() as tx:
        resp = tx.process_bundle(b)
    statuses = [e["response"]["status"] for e in resp["entry"]]
    assert statuses == ["200 OK", "200 OK", "201 Created", "204 No Content"]
    assert resp["entry"][0]["resource"]["total"] == 0  # GET runs after the DELETE
    assert location_id(resp["entry"][1]) == existing  # ifNoneExist found it
    with store.transaction() as tx:
        o = tx.read("Observation", location_id(resp["entry"][2]))
    assert o["subject"]["reference"] == f"Patient/{existing}"  # conditional reference resolved
    with store.transaction() as tx:  # the same conditional PUT again is an update of that resource
        again = tx.process_bundle(bundle("transaction", entry(
            "PUT", "Observation?identifier=urn:x|1",
            {**obs(f"Patient/{existing}", "113819"), "identifier": [{"system": "urn:x", "value": "1"}]})))
    assert location_id(again["entry"][0]) == o["id"]
    assert again["entry"][0]["response"]["etag"] == 'W/"2"'


def test_conditional_reference_without_match_fails(store):
    b = bundle("transaction", entry("POST", "Observation", obs("Patient?identifier=urn:mrn|404")))
    with store.transaction() as tx, pytest.raises(errors.PreconditionFailed):
        tx.process_bundle(b)


def test_if_match_in_a_transaction(store):
    with store.transaction() as tx:
        pid = tx.create(PAT).resource["id"]
    stale = bundle("transaction", entry("PUT", f"Patient/{pid}", {**PAT, "id": pid, "gender": "male"}, ifMatch='W/"2"'))
    with pytest.raises(errors.VersionConflict):
        with store.transaction() as tx:
            tx.process_bundle(stale)
    ok = copy.deepcopy(stale)
    ok["entry"][0]["request"]["ifMatch"] = 'W/"1"'
    with store.transaction() as tx:
        resp = tx.process_bundle(ok)
    assert resp["entry"][0]["response"]["location"] == f"Patient/{pid}/_history/2"


def test_batch_entries_are_independent(store):
    b = bundle("batch",
               entry("POST", "Patient", PAT),
               entry("POST", "Observation", {"resourceType": "Observation", "code": {}}),
               entry("GET", "Patient/nope"),
               entry("POST", "Patient", {**PAT, "identifier": [{"system": "urn:mrn", "value": "78"}]}))
    with store.transaction() as tx:
        resp = tx.process_bundle(b)
    assert resp["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in resp["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "404 Not Found", "201 Created"]
    assert resp["entry"][1]["response"]["outcome"]["issue"][0]["expression"] == ["Observation.status"]
    with store.transaction() as tx:
        assert tx.search("Patient", []).total == 2


def test_not_a_transaction(store):
    with store.transaction() as tx, pytest.raises(errors.InvalidResource):
        tx.process_bundle({"resourceType": "Bundle", "type": "collection"})


@pytest.mark.corpus
def test_rds_ig_sample_bundle(store):
    if not RDS_SAMPLE.is_file():
        pytest.skip(f"corpus not found at {RDS_SAMPLE}")
    sample = json.loads(RDS_SAMPLE.read_text())
    with store.transaction() as tx:
        resp = tx.process_bundle(sample)
    assert all(e["response"]["status"] == "201 Created" for e in resp["entry"])
    src = next(e["resource"] for e in sample["entry"] if e["resource"]["resourceType"] == "Observation")
    dap = next(c["valueQuantity"]["value"] for c in src["component"] if c["code"]["coding"][0]["code"] == "113722")
    with store.transaction() as tx:
        summary = tx.search("Observation", [("code", "http://loinc.org|73569-6"), ("_include", "Observation:patient"),
                                            ("_include", "Observation:device"), ("_include", "Observation:part-of")])
        above = tx.search("Observation", [("combo-code-value-quantity", f"113722$gt{dap - 1}")]).total
        below = tx.search("Observation", [("combo-code-value-quantity", f"113722$gt{dap}")]).total
    assert summary.total == 1 and above == 1 and below == 0
    assert sorted(r["resourceType"] for r in summary.included) == ["Device", "ImagingStudy", "Patient"]
    obs_ = summary.resources[0]
    assert all(not ref["reference"].startswith("urn:uuid:")
               for ref in [obs_["subject"], obs_["device"], *obs_["partOf"]])
