"""Store search: parameter types, modifiers, prefixes, composites, paging, sort, includes (R4 search.html)."""
from __future__ import annotations

import pytest

from dacs_fhir.store import Store, errors

DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """Two patients, one device, two studies, two dose summaries and an event (built here)."""
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('search') / 'store.db'}")
    s.upgrade()
    ids = {}
    with s.transaction() as tx:
        def make(key, res):
            ids[key] = tx.create(res).resource["id"]
        make("p1", {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1001"}],
                    "name": [{"family": "Müller", "given": ["Jürgen", "Karl"]}], "gender": "male", "birthDate": "1950-06"})
        make("p2", {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "1002"}],
                    "name": [{"family": "Mullins", "given": ["Ann"]}], "gender": "female", "birthDate": "1981-02-03"})
        make("dev", {"resourceType": "Device", "identifier": [{"system": "urn:serial", "value": "SN-7"}],
                     "manufacturer": "Siemens Healthineers", "modelNumber": "SOMATOM Force",
                     "type": {"coding": [{"system": DCM, "code": "CT"}]}})
        for key, pid, when in (("s1", "p1", "2024-03-05T10:15:00Z"), ("s2", "p2", "2024-04-01T08:00:00+02:00")):
            make(key, {"resourceType": "ImagingStudy", "status": "available", "started": when,
                       "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:1.2.3.{key}"}],
                       "subject": {"reference": f"Patient/{ids[pid]}"},
                       "series": [{"uid": "1.2.3.4", "modality": {"system": DCM, "code": "CT"}}]})
        for key, pid, study, dlp, when in (("o1", "p1", "s1", 612.5, "2024-03-05T10:15:00Z"),
                                           ("o2", "p2", "s2", 180, "2024-04-01T06:00:00Z")):
            make(key, {"resourceType": "Observation", "status": "final",
                       "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:9.9.{key}"}],
                       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                 "code": "imaging"}]}],
                       "code": {"coding": [{"system": LOINC, "code": "73569-6"}]},
                       "subject": {"reference": f"Patient/{ids[pid]}"},
                       "partOf": [{"reference": f"ImagingStudy/{ids[study]}"}],
                       "device": {"reference": f"Device/{ids['dev']}"}, "effectiveDateTime": when,
                       "component": [{"code": {"coding": [{"system": DCM, "code": "113813"}]},
                                      "valueQuantity": {"value": dlp, "unit": "mGy.cm", "system": UCUM, "code": "mGy.cm"}}]})
        make("ev", {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": DCM, "code": "113819"}]},
                    "subject": {"reference": f"Patient/{ids['p1']}"}, "effectivePeriod": {"start": "2024-03-05T10:15:00Z",
                                                                                          "end": "2024-03-05T10:16:00Z"},
                    "partOf": [{"reference": f"ImagingStudy/{ids['s1']}"}],
                    "valueQuantity": {"value": 12.5, "unit": "mGy", "system": UCUM, "code": "mGy"}})
        tx.update("Observation", ids["o1"], {**tx.read("Observation", ids["o1"]),
                                             "hasMember": [{"reference": f"Observation/{ids['ev']}"}]})
    yield s, ids
    s.dispose()


def found(db, rtype, *params, **kw) -> set[str]:
    store, ids = db
    names = {v: k for k, v in ids.items()}
    with store.transaction() as tx:
        result = tx.search(rtype, list(params), **kw)
    return {names[r["id"]] for r in result.resources}


@pytest.mark.parametrize("params, expected", [
    ([("family", "muller")], {"p1"}),                     # accent- and case-insensitive
    ([("family", "MUL")], {"p1", "p2"}),                  # starts-with by default
    ([("family:exact", "Müller")], {"p1"}),
    ([("family:exact", "muller")], set()),
    ([("family:contains", "lin")], {"p2"}),
    ([("given", "karl")], {"p1"}),
    ([("name", "ann")], {"p2"}),
    ([("name", "ann,karl")], {"p1", "p2"}),               # comma = OR
    ([("family", "mul"), ("given", "ann")], {"p2"}),      # repeated = AND
    ([("gender", "female")], {"p2"}),
    ([("birthdate", "1950")], {"p1"}),                     # partial dates are ranges
    ([("birthdate", "1950-06-15")], set()),                # eq: the value's range must contain the target's
    ([("birthdate", "ge1950-06-15")], {"p1", "p2"}),       # 1950-06 overlaps "after 15 June"
    ([("birthdate", "gt1950-06")], {"p2"}),
    ([("birthdate", "lt1981-02-03")], {"p1"}),
    ([("birthdate", "le1981-02-03")], {"p1", "p2"}),
    ([("birthdate", "ne1950-06")], {"p2"}),
    ([("birthdate", "sa1960")], {"p2"}),
    ([("birthdate", "eb1960")], {"p1"}),
    ([("identifier", "urn:mrn|1001")], {"p1"}),
    ([("identifier", "1002")], {"p2"}),
    ([("identifier", "urn:mrn|")], {"p1", "p2"}),
    ([("identifier", "|1001")], set()),                    # |code: no system
    ([("identifier", "urn:other|1001")], set()),
    ([("gender:not", "male")], {"p2"}),
    ([("birthdate:missing", "false")], {"p1", "p2"}),
])
def test_patient_parameters(db, params, expected):
    assert found(db, "Patient", *params) == expected


@pytest.mark.parametrize("params, expected", [
    ([("code", f"{LOINC}|73569-6")], {"o1", "o2"}),
    ([("code", "113819")], {"ev"}),
    ([("category", "imaging")], {"o1", "o2"}),
    ([("identifier", "urn:dicom:uid|urn:oid:9.9.o2")], {"o2"}),
    ([("date", "2024-03-05")], {"o1", "ev"}),
    ([("date", "ge2024-03-06")], {"o2"}),
    ([("date", "ge2024-03-01"), ("date", "lt2024-04-01")], {"o1", "ev"}),
    ([("date", "2024-04-01T06:00:00Z")], {"o2"}),
    ([("date", "2024-04-01T08:00:00+02:00")], {"o2"}),     # time zones compared in UTC
    ([("date", "lt2024-03-05T10:15:30Z")], {"o1", "ev"}),
    ([("date", "gt2024-03-05T10:15:30Z")], {"ev", "o2"}),  # the event period reaches past 10:15:30
    ([("combo-code-value-quantity", f"{DCM}|113813$gt500")], {"o1"}),
    ([("combo-code-value-quantity", "113813$lt500")], {"o2"}),
    ([("component-code-value-quantity", f"{DCM}|113813$gt100|{UCUM}|mGy.cm")], {"o1", "o2"}),
    ([("component-code-value-quantity", f"{DCM}|113813$gt0.5|{UCUM}|Gy.cm")], {"o1"}),   # UCUM-normalised
    ([("component-code-value-quantity", "113813$612.5")], {"o1"}),
    ([("component-code-value-quantity", "113813$613")], {"o1"}),  # implicit precision: 612.5 ≤ x < 613.5
    ([("combo-code-value-quantity", "113819$12.5")], {"ev"}),  # combo: Observation.code with value[x] too
    ([("component-code-value-quantity", "113819$12.5")], set()),
    ([("code-value-quantity", "113819$ge12")], {"ev"}),
    ([("value-quantity", "ge0.0125||Gy")], {"ev"}),
    ([("_id", "o1-placeholder")], set()),
])
def test_observation_parameters(db, params, expected):
    assert found(db, "Observation", *params) == expected


def test_reference_forms(db):
    _, ids = db
    for value in (ids["p1"], f"Patient/{ids['p1']}", f"http://example.org/fhir/Patient/{ids['p1']}"):
        assert found(db, "Observation", ("patient", value)) == {"o1", "ev"}
    assert found(db, "Observation", ("subject:Patient", ids["p2"])) == {"o2"}
    assert found(db, "Observation", ("device", f"Device/{ids['dev']}")) == {"o1", "o2"}
    assert found(db, "Observation", ("part-of", f"ImagingStudy/{ids['s1']}")) == {"o1", "ev"}
    assert found(db, "Observation", ("patient.identifier", "urn:mrn|1002")) == {"o2"}
    assert found(db, "Observation", ("device:missing", "true")) == {"ev"}
    assert found(db, "ImagingStudy", ("patient", ids["p2"])) == {"s2"}


def test_other_types(db):
    assert found(db, "ImagingStudy", ("modality", f"{DCM}|CT")) == {"s1", "s2"}
    assert found(db, "ImagingStudy", ("started", "le2024-03-31")) == {"s1"}
    assert found(db, "Device", ("manufacturer", "siemens")) == {"dev"}
    assert found(db, "Device", ("model", "somatom")) == {"dev"}
    assert found(db, "Device", ("type", "CT")) == {"dev"}


def test_id_and_last_updated(db):
    store, ids = db
    assert found(db, "Patient", ("_id", f"{ids['p1']},{ids['p2']}")) == {"p1", "p2"}
    with store.transaction() as tx:
        stamp = tx.read("Patient", ids["p2"])["meta"]["lastUpdated"]
    assert "p2" in found(db, "Patient", ("_lastUpdated", f"ge{stamp}"))
    assert found(db, "Patient", ("_lastUpdated", "lt2000-01-01")) == set()


def test_paging_total_and_sort(db):
    store, ids = db
    with store.transaction() as tx:
        page1 = tx.search("Observation", [("_sort", "-date")], count=2)
        page2 = tx.search("Observation", [("_sort", "-date")], count=2, offset=2)
        by_id = tx.search("Patient", [("_sort", "family")])
        counted = tx.search("Observation", [("code", "73569-6"), ("_summary", "count")])
    names = {v: k for k, v in ids.items()}
    assert page1.total == page2.total == 3
    assert [names[r["id"]] for r in page1.resources + page2.resources] == ["o2", "ev", "o1"]
    assert [r["name"][0]["family"] for r in by_id.resources] == ["Müller", "Mullins"]
    assert counted.total == 2 and counted.resources == []


def test_include_and_revinclude(db):
    store, ids = db
    with store.transaction() as tx:
        res = tx.search("Observation", [("identifier", "urn:oid:9.9.o1"), ("_include", "Observation:patient"),
                                        ("_include", "Observation:device"), ("_include", "Observation:has-member")])
        rev = tx.search("Patient", [("_id", ids["p2"]), ("_revinclude", "Observation:subject"),
                                    ("_revinclude", "ImagingStudy:patient")])
        study = tx.search("ImagingStudy", [("_id", ids["s1"]), ("_revinclude", "Observation:part-of")])
    assert {(r["resourceType"], r["id"]) for r in res.included} == {
        ("Patient", ids["p1"]), ("Device", ids["dev"]), ("Observation", ids["ev"])}
    assert {r["id"] for r in rev.included} == {ids["o2"], ids["s2"]}
    assert {r["id"] for r in study.included} == {ids["o1"], ids["ev"]}


def test_elements_and_summary(db):
    store, _ = db
    with store.transaction() as tx:
        r = tx.search("Patient", [("family", "mullins"), ("_elements", "gender")]).resources[0]
        s = tx.search("Observation", [("code", "113819"), ("_summary", "true")]).resources[0]
    assert set(r) == {"resourceType", "id", "meta", "gender"}
    assert r["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert "valueQuantity" in s and "partOf" in s and "effectivePeriod" in s


def test_unknown_parameters(db):
    store, _ = db
    with store.transaction() as tx:
        lenient = tx.search("Patient", [("shoe-size", "42"), ("gender", "male")])
        assert lenient.total == 1 and "shoe-size" in lenient.warnings[0]
        with pytest.raises(errors.InvalidSearch) as err:
            tx.search("Patient", [("shoe-size", "42")], strict=True)
        assert err.value.status == 400


@pytest.mark.parametrize("rtype, params", [
    ("Patient", [("birthdate", "yesterday")]),
    ("Observation", [("combo-code-value-quantity", "113813")]),
    ("Observation", [("combo-code-value-quantity", "113813$gtlots")]),
    ("Patient", [("family:fuzzy", "x")]),
    ("Patient", [("_sort", "shoe-size")]),
    ("Patient", [("gender:missing", "maybe")]),
])
def test_bad_values_are_invalid_searches(db, rtype, params):
    store, _ = db
    with store.transaction() as tx, pytest.raises(errors.InvalidSearch):
        tx.search(rtype, params)


def test_total_is_left_out_beyond_the_count_limit_unless_asked(db, monkeypatch):
    from dacs_fhir.store import searching

    store, _ = db
    monkeypatch.setattr(searching, "COUNT_LIMIT", 2)
    with store.transaction() as tx:
        assert tx.search("Observation", [("status", "final")], count=1).total is None
        assert tx.search("Observation", [("status", "final"), ("_total", "accurate")], count=1).total == 3
        assert tx.search("Observation", [("status", "final"), ("_summary", "count")]).total == 3
        assert tx.search("Observation", [("status", "final"), ("_total", "none")]).total is None
        assert tx.search("Observation", [("status", "final")], count=5).total == 3  # all on the first page


def test_date_range_pages_in_date_order_without_gaps(store):
    """One date range on a single-valued parameter pages through the date index in (low, high, id) order:
    every match once across pages, wide (Period) and narrow rows merged, total exact."""
    s = store
    with s.transaction() as tx:
        for day in (9, 3, 7, 1, 5, 2, 8, 4, 6):
            tx.create({"resourceType": "Observation", "status": "final", "code": {"text": f"d{day}"},
                       "effectiveDateTime": f"2024-05-{day:02d}T12:00:00Z"})
        tx.create({"resourceType": "Observation", "status": "final", "code": {"text": "period"},
                   "effectivePeriod": {"start": "2024-04-20", "end": "2024-05-03"}})
        tx.create({"resourceType": "Observation", "status": "final", "code": {"text": "outside"},
                   "effectiveDateTime": "2024-06-01T00:00:00Z"})
    params = [("date", "ge2024-05-02"), ("date", "lt2024-05-09")]
    pages, offset = [], 0
    with s.transaction() as tx:
        while True:
            result = tx.search("Observation", params, count=3, offset=offset)
            pages.append([r["code"]["text"] for r in result.resources])
            offset += 3
            if len(result.resources) < 3:
                break
        total = tx.search("Observation", params + [("_summary", "count")]).total
    texts = [t for page in pages for t in page]
    assert texts == ["period", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]
    assert total == 8
