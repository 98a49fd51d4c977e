"""The RDS IG over a real socket: an RDS producer's transaction, every query sample of the IG's
testing page (input/pagecontent/testing.md, "Radiation Dose Summary Consumer search query
samples"), the IG's TestScripts (RDSP / RDSC simulators, sharing verification) and the stock
client ``fhirclient``."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import requests

from test_fhir_rest_api import FHIR_JSON, JSON_HEADERS, api  # noqa: F401  (fixture)
from testscript_runner import TestScriptRunner

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
IG_BUNDLE = SHARED / "corpus" / "fhir" / "rds-ig-bundle-sample.json"
TESTSCRIPTS = SHARED / "conformance" / "rds-ig"
LOINC_RDS = "73569-6"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"


def ig_bundle() -> dict:
    if not IG_BUNDLE.is_file():
        pytest.skip(f"RDS IG sample bundle not found at {IG_BUNDLE}")
    return json.loads(IG_BUNDLE.read_text())


def script_path(name: str) -> Path:
    path = TESTSCRIPTS / f"TestScript-{name}.xml"
    if not path.is_file():
        pytest.skip(f"RDS IG TestScript not found at {path}")
    return path


def rds_bundle(dlp: float = 203.12, date: str = "2024-03-05T10:20:00+01:00", mrn: str | None = None,
               serial: str | None = None) -> dict:
    """A CT dose summary transaction as an RDS producer sends it (RDS IG CT example shape)."""
    mrn = mrn or uuid.uuid4().hex[:8]
    serial = serial or uuid.uuid4().hex[:6]
    study_uid = f"1.2.826.0.1.3680043.8.498.{uuid.uuid4().int % 10**12}"
    u = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("obs", "event", "patient", "device", "study", "pract", "order")}
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:test:mrn", "value": mrn}],
               "name": [{"family": "Doseperson", "given": ["Kim"]}], "gender": "male", "birthDate": "1961-07-14"}
    device = {"resourceType": "Device",
              "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SNO"}]},
                              "value": serial}],
              "manufacturer": "Acme Medical", "serialNumber": serial,
              "deviceName": [{"name": "Acme CT 64", "type": "model-name"}],
              "type": {"coding": [{"system": DCM, "code": "CT", "display": "Computed Tomography"}]}}
    study = {"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": u["patient"]},
             "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
             "started": date, "modality": [{"system": DCM, "code": "CT"}],
             "series": [{"uid": f"{study_uid}.1", "modality": {"system": DCM, "code": "CT"}}]}
    pract = {"resourceType": "Practitioner", "identifier": [{"system": "urn:test:staff", "value": f"p-{mrn}"}],
             "name": [{"family": "Radiographer", "given": ["Lee"]}]}
    order = {"resourceType": "ServiceRequest", "status": "completed", "intent": "order", "subject": {"reference": u["patient"]},
             "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                             "system": "urn:test:accession", "value": f"ACC{mrn}"}]}
    summary = {
        "resourceType": "Observation", "status": "final",
        "meta": {"profile": ["http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition/radiation-dose-summary"]},
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}.9"}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": LOINC_RDS}]},
        "subject": {"reference": u["patient"]}, "partOf": [{"reference": u["study"]}], "focus": [{"reference": u["study"]}],
        "basedOn": [{"reference": u["order"]}], "device": {"reference": u["device"]}, "performer": [{"reference": u["pract"]}],
        "effectiveDateTime": date, "valueString": f"CT performed, total DLP {dlp} mGy.cm",
        "component": [
            {"code": {"coding": [{"system": DCM, "code": "121058"}]},
             "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77477000"}]}},
            {"code": {"coding": [{"system": DCM, "code": "113813", "display": "CT Dose Length Product Total"}]},
             "valueQuantity": {"value": dlp, "unit": "mGy.cm", "system": UCUM, "code": "mGy.cm"}},
        ],
    }
    event = {"resourceType": "Observation", "status": "final",
             "code": {"coding": [{"system": DCM, "code": "113819", "display": "CT Acquisition"}]},
             "subject": {"reference": u["patient"]}, "partOf": [{"reference": u["study"]}],
             "device": {"reference": u["device"]}, "effectiveDateTime": date,
             "component": [{"code": {"coding": [{"system": DCM, "code": "113830", "display": "Mean CTDIvol"}]},
                            "valueQuantity": {"value": 12.5, "unit": "mGy", "system": UCUM, "code": "mGy"}}]}
    entries = [
        (u["patient"], patient, {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=urn:test:mrn|{mrn}"}),
        (u["device"], device, {"method": "POST", "url": "Device"}),
        (u["study"], study, {"method": "POST", "url": "ImagingStudy"}),
        (u["pract"], pract, {"method": "POST", "url": "Practitioner"}),
        (u["order"], order, {"method": "POST", "url": "ServiceRequest"}),
        (u["obs"], summary, {"method": "POST", "url": "Observation"}),
        (u["event"], event, {"method": "POST", "url": "Observation"}),
    ]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f, "resource": r, "request": q} for f, r, q in entries]}


def post_transaction(api, bundle: dict) -> dict[str, str]:
    """POST a transaction; returns resource type -> id of what it created (summary for Observation)."""
    resp = requests.post(api.base, data=json.dumps(bundle), headers=JSON_HEADERS, timeout=60)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["type"] == "transaction-response" and len(body["entry"]) == len(bundle["entry"])
    ids: dict[str, str] = {}
    for req, res in zip(bundle["entry"], body["entry"]):
        assert res["response"]["status"].startswith(("200", "201")), res
        rtype = req["resource"]["resourceType"]
        rid = res["response"]["location"].split("/_history")[0].rstrip("/").split("/")[-1]
        if rtype == "Observation" and req["resource"]["code"]["coding"][0]["code"] != LOINC_RDS:
            ids["Event"] = rid
        else:
            ids[rtype] = rid
    return ids


def search_ids(api, query: str) -> set[str]:
    resp = requests.get(f"{api.base}/{query}", headers={"Accept": FHIR_JSON}, timeout=30)
    assert resp.status_code == 200, resp.text
    bundle = resp.json()
    assert bundle["type"] == "searchset"
    found = {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
    assert bundle["total"] == len(found)
    return found


# ---- RDS producer transaction, then the IG's query samples find it
def test_ig_sample_transaction_then_ig_query_samples(api):
    ids = post_transaction(api, ig_bundle())
    other = post_transaction(api, rds_bundle())  # a second study that must not match the IG sample's filters
    obs, pat, dev, study = ids["Observation"], ids["Patient"], ids["Device"], ids["ImagingStudy"]

    # Search all the Dose summaries within the FHIR Server: GET /fhir/Observation?code=73569-6
    assert search_ids(api, f"Observation?code={LOINC_RDS}") == {obs, other["Observation"]}
    # View specific Dose Summary: GET /fhir/Observation/19
    summary = requests.get(f"{api.base}/Observation/{obs}", timeout=30).json()
    assert summary["valueString"] == "X-ray angiography performed, total dose 212 mGy"
    assert summary["subject"]["reference"].endswith(f"Patient/{pat}")  # urn:uuid resolved
    assert summary["partOf"][0]["reference"].endswith(f"ImagingStudy/{study}")
    dap = [c for c in summary["component"] if c["code"]["coding"][0]["code"] == "113722"][0]
    assert dap["valueQuantity"]["value"] == 13639
    # Access Device dose summaries: GET /fhir/Observation?code=73569-6&device=22
    assert search_ids(api, f"Observation?code={LOINC_RDS}&device={dev}") == {obs}
    # Search Dose Summary of a patient through the last year: ...&patient=8&date=gt2019-01-01
    assert search_ids(api, f"Observation?code={LOINC_RDS}&patient={pat}&date=gt2019-01-01") == {obs}
    assert search_ids(api, f"Observation?code={LOINC_RDS}&patient={pat}&date=gt2019-01-24") == set()
    # Search Dose Summary related to the study: GET /fhir/Observation?code=73569-6&part-of=1232
    assert search_ids(api, f"Observation?code={LOINC_RDS}&part-of={study}") == {obs}
    assert search_ids(api, f"Observation?code={LOINC_RDS}&part-of=ImagingStudy/{study}") == {obs}


def test_built_producer_bundle_found_by_the_six_ig_searches(api):
    bundle = rds_bundle(dlp=450.5, date="2023-11-02T08:15:00Z")
    ids = post_transaction(api, bundle)
    post_transaction(api, rds_bundle(dlp=99.0, date="2021-01-01T00:00:00Z"))
    obs = ids["Observation"]
    summary = bundle["entry"][5]["resource"]
    ident = summary["identifier"][0]
    rds = f"Observation?code=http://loinc.org|{LOINC_RDS}"
    assert search_ids(api, f"{rds}&identifier={ident['system']}|{ident['value']}") == {obs}
    assert search_ids(api, f"{rds}&identifier={ident['value']}") == {obs}
    assert search_ids(api, f"{rds}&patient=Patient/{ids['Patient']}") == {obs}
    assert search_ids(api, f"{rds}&device={ids['Device']}") == {obs}
    assert search_ids(api, f"{rds}&part-of={ids['ImagingStudy']}") == {obs}
    assert search_ids(api, f"{rds}&date=ge2023-11-02&date=lt2023-11-03") == {obs}
    # without the code filter the study's event observation is part of the study too
    assert search_ids(api, f"Observation?part-of={ids['ImagingStudy']}") == {obs, ids["Event"]}


def test_fhirclient_reads_and_pages_the_summaries(api):
    from fhirclient import client
    from fhirclient.models.capabilitystatement import CapabilityStatement
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    made = [post_transaction(api, rds_bundle(dlp=100.0 + i)) for i in range(3)]
    smart = client.FHIRClient(settings={"app_id": "dacs-fhir-tests", "api_base": api.base + "/"})
    # the stock client parses our CapabilityStatement with its R4 models (strict on unknown elements)
    caps = CapabilityStatement.read_from("metadata", smart.server)
    assert caps.fhirVersion == "4.0.1"

    obs = Observation.read(made[0]["Observation"], smart.server)
    assert obs.code.coding[0].code == LOINC_RDS
    assert obs.component[1].valueQuantity.value == pytest.approx(100.0)

    # paging through next links, two per page
    search = Observation.where(struct={"code": LOINC_RDS, "_count": "2"})
    pages = list(search.perform_iter(smart.server))
    assert len(pages) == 2 and pages[0].total == 3
    got = {e.resource.id for b in pages for e in (b.entry or []) if e.search.mode == "match"}
    assert got == {m["Observation"] for m in made}

    # create and delete with the client's models
    p = Patient({"resourceType": "Patient", "name": [{"family": "Clientmade"}], "gender": "other"})
    created = p.create(smart.server)
    assert created["resourceType"] == "Patient"
    found = Patient.where(struct={"family": "Clientmade"}).perform_resources_iter(smart.server)
    ids = [r.id for r in found]
    assert ids == [created["id"]]
    Patient.read(created["id"], smart.server).delete()
    assert requests.get(f"{api.base}/Patient/{created['id']}", timeout=30).status_code == 410


# ---- the IG's TestScripts
def _fixtures(ref: str) -> dict:
    bundle = ig_bundle()
    assert ref == f"Bundle/{bundle['id']}", ref
    return bundle


def test_testscript_rdsp_simulator(api):
    runner = TestScriptRunner(script_path("RDSP-Simulator"), api.base, fixtures=_fixtures)
    report = runner.run()
    assert not report.failures, report.summary()
    asserts = [r for r in report.results if r.kind == "assert"]
    assert len(asserts) == 3
    teardown = [r for r in report.results if r.section == "teardown"]
    assert len(teardown) == 4 and all(r.outcome == "pass" and r.message.startswith("HTTP 20") for r in teardown)
    # the teardown really deleted the summary
    assert search_ids(api, f"Observation?code={LOINC_RDS}") == set()


def test_testscript_sharing_verification_after_producer_post(api):
    post_transaction(api, ig_bundle())  # what the RDSP did before this script runs
    report = TestScriptRunner(script_path("RDS-sharing-verification"), api.base).run()
    assert not report.failures, report.summary()
    assert len([r for r in report.results if r.kind == "assert" and r.outcome == "pass"]) == 5


def test_testscript_sharing_verification_fails_on_an_empty_server(api):
    report = TestScriptRunner(script_path("RDS-sharing-verification"), api.base).run()
    assert len(report.failures) == 5  # every "total >= 1" assert fails: the runner can fail


def test_testscript_rdsc_simulator(api):
    ids = post_transaction(api, ig_bundle())
    runner = TestScriptRunner(script_path("RDSC-Simulator"), api.base, variables={"rdsResourceId": ids["Observation"]})
    report = runner.run()
    assert not report.failures, report.summary()
    passed = [r for r in report.results if r.kind == "assert" and r.outcome == "pass"]
    assert len(passed) == 15
    assert runner.variable("patientId") == ids["Patient"]
    assert runner.variable("imagingStudyId") == ids["ImagingStudy"]
