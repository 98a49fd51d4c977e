"""Search over HTTP: paging links, POST _search, lenient/strict handling, _include/_revinclude,
_sort, _summary=count, _elements, modifiers and prefixes, dose-value searches."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import requests

from test_fhir_rest_api import FHIR_JSON, JSON_HEADERS, api, patient  # noqa: F401  (fixture)
from test_fhir_rest_rds_ig import DCM, LOINC_RDS, UCUM, post_transaction, rds_bundle, search_ids


def get_bundle(url: str, **headers) -> dict:
    resp = requests.get(url, headers={"Accept": FHIR_JSON, **headers}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def link(bundle: dict, relation: str):
    return next((l["url"] for l in bundle.get("link", []) if l["relation"] == relation), None)


def make_patients(api, n: int, family: str) -> set[str]:
    ids = set()
    for i in range(n):
        body = patient(family=family, value=f"{family}-{i}")
        resp = requests.post(f"{api.base}/Patient", data=json.dumps(body), headers=JSON_HEADERS, timeout=30)
        ids.add(resp.json()["id"])
    return ids


def test_paging_with_next_and_previous_links(api):
    made = make_patients(api, 5, "Pager")
    make_patients(api, 2, "Other")
    first = get_bundle(f"{api.base}/Patient?family=Pager&_count=2")
    assert first["total"] == 5 and len(first["entry"]) == 2
    assert link(first, "previous") is None
    assert parse_qs(urlsplit(link(first, "self")).query)["family"] == ["Pager"]
    seen, page, pages = [], first, 0
    while page:
        pages += 1
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        nxt = link(page, "next")
        if pages == 2:
            back = get_bundle(link(page, "previous"))
            assert [e["resource"]["id"] for e in back["entry"]] == [e["resource"]["id"] for e in first["entry"]]
        page = get_bundle(nxt) if nxt else None
    assert pages == 3 and len(seen) == 5 and set(seen) == made
    last = get_bundle(f"{api.base}/Patient?family=Pager&_count=2&_offset=4")  # _offset is an alias of _getpagesoffset
    assert len(last["entry"]) == 1 and link(last, "next") is None and link(last, "previous")


def test_post_search_form_equals_get(api):
    made = make_patients(api, 3, "Former")
    resp = requests.post(f"{api.base}/Patient/_search", data={"family": "Former", "_count": "10"},
                         headers={"Accept": FHIR_JSON}, timeout=30)
    assert resp.status_code == 200, resp.text
    got = {e["resource"]["id"] for e in resp.json()["entry"]}
    assert got == made == search_ids(api, "Patient?family=Former")


def test_unknown_parameter_lenient_warns_strict_refuses(api):
    made = make_patients(api, 1, "Lenient")
    lenient = get_bundle(f"{api.base}/Patient?family=Lenient&no-such-param=1")
    matches = [e for e in lenient["entry"] if e["search"]["mode"] == "match"]
    outcomes = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert {e["resource"]["id"] for e in matches} == made
    assert len(outcomes) == 1 and outcomes[0]["resource"]["issue"][0]["severity"] == "warning"
    assert "no-such-param" in json.dumps(outcomes[0]["resource"])
    strict = requests.get(f"{api.base}/Patient?family=Lenient&no-such-param=1",
                          headers={"Prefer": "handling=strict"}, timeout=30)
    assert strict.status_code == 400 and strict.json()["resourceType"] == "OperationOutcome"
    bad_count = requests.get(f"{api.base}/Patient?_count=many", timeout=30)
    assert bad_count.status_code == 400 and bad_count.json()["resourceType"] == "OperationOutcome"


def test_include_revinclude_sort_summary_elements(api):
    early = post_transaction(api, rds_bundle(dlp=150.0, date="2022-05-01T09:00:00Z"))
    late = post_transaction(api, rds_bundle(dlp=350.0, date="2024-05-01T09:00:00Z"))

    inc = get_bundle(f"{api.base}/Observation?code={LOINC_RDS}&_include=Observation:patient")
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in inc["entry"]}
    assert modes == {("Observation", "match"), ("Patient", "include")}
    assert {e["resource"]["id"] for e in inc["entry"] if e["search"]["mode"] == "include"} == {early["Patient"], late["Patient"]}

    rev = get_bundle(f"{api.base}/Patient?_id={early['Patient']}&_revinclude=Observation:patient")
    included = {e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "include"}
    assert included == {early["Observation"], early["Event"]}

    newest = get_bundle(f"{api.base}/Observation?code={LOINC_RDS}&_sort=-date")
    assert [e["resource"]["id"] for e in newest["entry"]] == [late["Observation"], early["Observation"]]
    oldest = get_bundle(f"{api.base}/Observation?code={LOINC_RDS}&_sort=date")
    assert [e["resource"]["id"] for e in oldest["entry"]] == [early["Observation"], late["Observation"]]

    count = get_bundle(f"{api.base}/Observation?code={LOINC_RDS}&_summary=count")
    assert count["total"] == 2 and not [e for e in count.get("entry", []) if e["search"]["mode"] == "match"]

    elements = get_bundle(f"{api.base}/Observation?code={LOINC_RDS}&_elements=valueString")
    for e in elements["entry"]:
        assert "valueString" in e["resource"] and "component" not in e["resource"]


def test_dose_value_searches(api):
    low = post_transaction(api, rds_bundle(dlp=120.0))
    high = post_transaction(api, rds_bundle(dlp=820.0))
    dlp = f"{DCM}|113813"
    assert search_ids(api, f"Observation?component-code-value-quantity={dlp}$gt500") == {high["Observation"]}
    assert search_ids(api, f"Observation?combo-code-value-quantity={dlp}$gt500|{UCUM}|mGy.cm") == {high["Observation"]}
    assert search_ids(api, f"Observation?component-code-value-quantity={dlp}$lt500") == {low["Observation"]}
    assert search_ids(api, f"Observation?code={LOINC_RDS}&component-code-value-quantity={dlp}$gt1000") == set()


def test_context_resource_searches(api):
    ids = post_transaction(api, rds_bundle(mrn="MRN-77", serial="SER-77", date="2020-02-03T04:05:06Z"))
    post_transaction(api, rds_bundle())
    assert search_ids(api, "Patient?identifier=urn:test:mrn|MRN-77") == {ids["Patient"]}
    assert ids["Patient"] in search_ids(api, "Patient?family=dosep&given=Kim&gender=male&birthdate=1961-07-14")
    assert search_ids(api, "Patient?family:exact=doseperson&identifier=MRN-77") == set()  # :exact is case-sensitive
    assert search_ids(api, "Patient?family:exact=Doseperson&identifier=MRN-77") == {ids["Patient"]}
    assert search_ids(api, "ImagingStudy?modality=CT&started=2020-02-03&patient=" + ids["Patient"]) == {ids["ImagingStudy"]}
    assert search_ids(api, "Device?identifier=SER-77&type=CT&manufacturer=acme&model=Acme CT") == {ids["Device"]}
    assert ids["Practitioner"] in search_ids(api, "Practitioner?family=Radiographer&given=Lee")
    assert search_ids(api, "ServiceRequest?identifier=ACCMRN-77&patient=" + ids["Patient"]) == {ids["ServiceRequest"]}
    assert ids["Observation"] not in search_ids(api, "Observation?category:missing=true")
    assert ids["Event"] in search_ids(api, "Observation?category:missing=true&part-of=" + ids["ImagingStudy"])
