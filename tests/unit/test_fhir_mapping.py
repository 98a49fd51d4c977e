"""DoseReport -> FHIR transaction Bundle: RDS IG 1.0.0 summary, our irradiation events, conditional requests."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from dacs_fhir.domain import (
    CT, PROJECTION, RADIOPHARMACEUTICAL, SOURCE_IMAGE, SOURCE_RDSR, AccumulatedDose, Concept, Device, DoseReport,
    IrradiationEvent, Measurement, OrganDose, Patient, Person, PersonName, Quantity, RadiopharmaceuticalAdministration,
    Study, XRayFilter,
)
from dacs_fhir.mappers import fhir
from dacs_fhir.profiles import validate_bundle

UTC = timezone.utc
DCM = "http://dicom.nema.org/resources/ontology/DCM"
UCUM = "http://unitsofmeasure.org"
LEFT_BREAST = Concept("SCT", "80248007", "Left breast")
RIGHT_BREAST = Concept("SRT", "T-04020", "Right breast")


def _m(code, value, unit, qualifier=None, scheme="DCM"):
    return Measurement(Concept(scheme, code), Quantity(value, unit), qualifier)


def ct_report(**changes) -> DoseReport:
    start = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
    events = tuple(
        IrradiationEvent(
            uid=f"1.2.3.4.9.{n}", kind=CT, started=start + timedelta(minutes=n), protocol=f"Thorax {n}",
            event_type=Concept("SCT", "116152004", "Spiral Acquisition"),
            target_region=Concept("SCT", "43799004", "Chest"), phantom=Concept("DCM", "113691", "IEC Body Dosimetry Phantom"),
            measurements=(_m("113830", 3.61 * n, "mGy"), _m("113838", 100.5 * n, "mGy.cm"), _m("113825", 350.0, "mm"),
                          _m("113828", 0.9, "{ratio}")),
        )
        for n in (1, 2)
    )
    report = DoseReport(
        sop_instance_uid="1.2.3.4.5", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=CT, source=SOURCE_RDSR,
        study=Study(instance_uid="1.2.3.4", accession_number="ACC 7&8", started=datetime(2024, 3, 1, 9, 55, tzinfo=UTC),
                    description="CT THORAX"),
        patient=Patient(id="P^1", issuer="HOSP", name=PersonName("Müller", ("Anna",)), birth_date=date(1960, 5, 6), sex="F"),
        device=Device(manufacturer="SIEMENS", model="SOMATOM Definition Flash", serial_number="73254",
                      station_name="CT01", observer_uid="1.2.3.99"),
        modality="CT", started=start,
        persons=(Person(PersonName("Moore", ("John",)), role=Concept("DCM", "113850", "Irradiation Authorizing"), id="pract67"),),
        accumulated=(AccumulatedDose(measurements=(_m("113813", 301.5, "mGy.cm"), _m("113812", 2, "{events}"))),),
        events=events,
    )
    return report.with_(**changes)


def fluoro_report(n_events=3, **changes) -> DoseReport:
    start = datetime(2024, 3, 2, 8, 0, 0, tzinfo=UTC)
    events = tuple(
        IrradiationEvent(
            uid=f"1.2.5.{i}", kind=PROJECTION, started=start + timedelta(seconds=10 * i),
            plane=Concept("DCM", "113620", "Plane A"), event_type=Concept("SRT", "P5-06000", "Fluoroscopy"),
            measurements=(_m("122130", 12.5 + i, "mGy.cm2"), _m("113738", 0.4, "mGy"), _m("112011", -30.0, "deg"),
                          _m("112012", 5.0, "deg"), _m("113768", 15, "{pulses}"), _m("113733", 70.0, "kV")),
            filters=(XRayFilter(type=Concept("DCM", "113650", "Strip filter"), material=Concept("DCM", "113710", "Copper"),
                                thickness_min=Quantity(0.1, "mm"), thickness_max=Quantity(0.3, "mm")),),
        )
        for i in range(n_events)
    )
    report = DoseReport(
        sop_instance_uid="1.2.5.0", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=PROJECTION, source=SOURCE_RDSR,
        study=Study(instance_uid="1.2.5"), patient=Patient(id="P2"), modality="XA", started=start,
        device=Device(manufacturer="Philips", model="Allura", serial_number="SN1", station_name="XA01"),
        accumulated=(
            AccumulatedDose(plane=Concept("DCM", "113620", "Plane A"), measurements=(
                _m("113722", 160.0, "mGy.cm2"), _m("113725", 2.52, "mGy"), _m("113730", 28.0, "s"), _m("113731", 27, "1"))),
            AccumulatedDose(plane=Concept("DCM", "113621", "Plane B"), measurements=(
                _m("113722", 40.0, "mGy.cm2"), _m("113725", 1.0, "mGy"), _m("113730", 2.0, "s"), _m("113731", 3, "1"))),
        ),
        events=events,
    )
    return report.with_(**changes)


def mammo_report() -> DoseReport:
    return DoseReport(
        sop_instance_uid="1.2.6.0", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=PROJECTION, source=SOURCE_RDSR,
        study=Study(instance_uid="1.2.6"), patient=Patient(id="P3", sex="F"), modality="MG",
        device=Device(manufacturer="HOLOGIC, Inc.", model="Selenia Dimensions", station_name="MG01"),
        started=datetime(2024, 3, 3, 8, 0, tzinfo=UTC),
        accumulated=(AccumulatedDose(measurements=(_m("111637", 1.30, "mGy", LEFT_BREAST), _m("111637", 1.28, "mGy", RIGHT_BREAST))),),
        events=(IrradiationEvent(uid="1.2.6.1", kind=PROJECTION, laterality=LEFT_BREAST,
                                 measurements=(_m("111631", 1.30, "mGy"), _m("111633", 52.0, "mm"))),),
    )


def rp_report() -> DoseReport:
    adm = RadiopharmaceuticalAdministration(
        uid="1.2.7.1", agent=Concept("SCT", "35321007", "Fluorodeoxyglucose F^18^"),
        radionuclide=Concept("SCT", "77004003", "^18^Fluorine"), route=Concept("SCT", "47625008", "Intravenous route"),
        started=datetime(2024, 3, 4, 7, 30, tzinfo=UTC), activity=Quantity(394.0, "MBq"), effective_dose=Quantity(7.486, "mSv"),
        organ_doses=(OrganDose(Concept("SCT", "39607008", "Lung"), Quantity(0.08, "mGy")),),
    )
    return DoseReport(
        sop_instance_uid="1.2.7.0", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.68", kind=RADIOPHARMACEUTICAL, source=SOURCE_RDSR,
        study=Study(instance_uid="1.2.7"), patient=Patient(id="P4"), modality="PT",
        device=Device(manufacturer="SIEMENS", model="Biograph", station_name="PET1"), administrations=(adm,),
    )


def _by_type(bundle, rtype):
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _summary(bundle):
    return next(e["resource"] for e in _by_type(bundle, "Observation")
                if e["resource"]["code"]["coding"][0]["code"] == "73569-6")


def _components(obs):
    return {(c["code"]["coding"][0]["system"], c["code"]["coding"][0]["code"]): c for c in obs["component"]}


ALL_REPORTS = [ct_report, fluoro_report, mammo_report, rp_report]


@pytest.mark.parametrize("make", ALL_REPORTS, ids=lambda f: f.__name__)
def test_bundle_parses_in_r4b_and_passes_profiles(make):
    bundle = fhir.to_bundle(make())
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    assert [str(i) for i in validate_bundle(bundle) if i.severity == "error"] == []


@pytest.mark.parametrize("make", ALL_REPORTS, ids=lambda f: f.__name__)
def test_same_report_gives_the_same_bundle(make):
    assert json.dumps(fhir.to_bundle(make())) == json.dumps(fhir.to_bundle(make()))
    urls = [e["fullUrl"] for e in fhir.to_bundle(make())["entry"]]
    assert len(urls) == len(set(urls)) and all(u.startswith("urn:uuid:") for u in urls)


def test_ct_summary_follows_the_rds_ig():
    report = ct_report()
    bundle = fhir.to_bundle(report)
    s = _summary(bundle)
    study = _by_type(bundle, "ImagingStudy")[0]
    patient = _by_type(bundle, "Patient")[0]
    assert fhir.PROFILE_RDS_SUMMARY in s["meta"]["profile"]
    assert {"type": {"coding": [{"system": fhir.SYS_ID_TYPE, "code": "sop-instance-uid", "display": "SOP Instance UID"}]},
            "system": "urn:dicom:uid", "value": "urn:oid:1.2.3.4.5"} in s["identifier"]
    assert s["partOf"][0]["reference"] == study["fullUrl"] == s["focus"][0]["reference"]
    assert s["partOf"][0]["identifier"]["value"] == "urn:oid:1.2.3.4"
    assert s["subject"]["reference"] == patient["fullUrl"]
    assert s["effectiveDateTime"] == "2024-03-01T10:00:00+00:00"
    comps = _components(s)
    assert comps[(DCM, "121058")]["valueCodeableConcept"]["coding"][0]["code"] == "77477000"
    assert comps[(DCM, "113813")]["valueQuantity"] == {"value": 301.5, "unit": "mGy.cm", "system": UCUM, "code": "mGy.cm"}
    assert comps[(DCM, "113812")]["valueInteger"] == 2
    assert "301.5 mGy.cm" in s["valueString"] and "2 irradiation events" in s["valueString"]
    practitioner = _by_type(bundle, "Practitioner")[0]
    assert s["performer"] == [{"reference": practitioner["fullUrl"], "type": "Practitioner"}]
    assert practitioner["resource"]["name"] == [{"family": "Moore", "given": ["John"]}]
    order = _by_type(bundle, "ServiceRequest")[0]
    assert s["basedOn"][0]["reference"] == order["fullUrl"]
    assert s["basedOn"][0]["identifier"]["value"] == "ACC 7&8"


def test_events_are_members_with_their_measurements():
    report = ct_report()
    bundle = fhir.to_bundle(report)
    s = _summary(bundle)
    events = [e for e in _by_type(bundle, "Observation") if e["resource"] is not s]
    assert [m["reference"] for m in s["hasMember"]] == [e["fullUrl"] for e in events]
    for entry, event in zip(events, report.events):
        obs = entry["resource"]
        assert obs["meta"]["profile"] == [fhir.PROFILE_IRRADIATION_EVENT]
        assert obs["identifier"][0]["value"] == f"urn:oid:{event.uid}"
        assert obs["effectiveDateTime"] == event.started.isoformat()
        assert obs["bodySite"]["coding"][0]["code"] == "43799004"
        comps = _components(obs)
        assert comps[(DCM, "113830")]["valueQuantity"]["value"] == event.get("113830").value
        assert comps[(DCM, "113838")]["valueQuantity"]["code"] == "mGy.cm"
        assert comps[(DCM, "125203")]["valueString"] == event.protocol
        assert comps[(DCM, "113820")]["valueCodeableConcept"]["coding"][0]["code"] == "116152004"
        assert comps[(DCM, "113835")]["valueCodeableConcept"]["coding"][0]["code"] == "113691"


def test_conditional_create_and_update():
    report = ct_report()
    create = fhir.to_bundle(report)
    for entry in create["entry"]:
        req, ident = entry["request"], entry["resource"]["identifier"][0]
        assert req["method"] == "POST" and req["url"] == entry["resource"]["resourceType"]
        assert dict(parse_qsl(req["ifNoneExist"])) == {"identifier": f"{ident['system']}|{ident['value']}"}
    update = fhir.to_bundle(report, conditional="update")
    methods = {e["resource"]["resourceType"]: e["request"]["method"] for e in update["entry"]}
    # context resources belong to the RIS / ADT / PACS side (RDS IG): never overwritten from a dose object
    assert methods == {"Patient": "POST", "Practitioner": "POST", "ServiceRequest": "POST",
                       "ImagingStudy": "POST", "Device": "POST", "Observation": "PUT"}
    s = next(e for e in update["entry"] if e["resource"] is _summary(update))
    rtype, query = s["request"]["url"].split("?", 1)
    assert rtype == "Observation"
    assert dict(parse_qsl(query))["identifier"] == f"{fhir.SYS_DOSE_SUMMARY}|{fhir.summary_key(report)}"
    assert [e["fullUrl"] for e in update["entry"]] == [e["fullUrl"] for e in create["entry"]]
    with pytest.raises(ValueError):
        fhir.to_bundle(report, conditional="replace")


def test_summary_key_is_stable_across_cumulative_reports_of_one_study():
    first = ct_report(sop_instance_uid="1.2.3.4.5.1", events=ct_report().events[:1])
    later = ct_report(sop_instance_uid="1.2.3.4.5.2", source_instances=("1.2.3.4.5.1", "1.2.3.4.5.2"))
    assert fhir.summary_key(first) == fhir.summary_key(later)
    ids = [i["value"] for i in _summary(fhir.to_bundle(later))["identifier"]]
    assert "urn:oid:1.2.3.4.5.1" in ids and "urn:oid:1.2.3.4.5.2" in ids
    assert fhir.summary_key(fluoro_report()) != fhir.summary_key(fluoro_report(device=Device(serial_number="other")))


def test_identifier_systems_and_full_urls_match_the_hl7_v2_mapping():
    from dacs_fhir.mappers.hl7v2 import datatypes
    for issuer in ("", "HOSP", "RIS A"):  # a name: HD-1 namespace
        assert fhir.authority_system(issuer, "patient-id") == datatypes.authority_system(issuer, kind="patient-id")
    for issuer in ("1.2.826.0.1.3680043.2", "urn:uuid:1234", "https://h.example/pid"):  # an OID / URI: HD-2 universal id
        assert fhir.authority_system(issuer, "patient-id") == datatypes.authority_system("", issuer, kind="patient-id")
    assert fhir.authority_system("RIS", "accession") == datatypes.authority_system("RIS", kind="accession")
    assert fhir.full_url("s", "v", "Patient") == datatypes.full_url("s", "v", "Patient")
    patient = _by_type(fhir.to_bundle(ct_report()), "Patient")[0]
    assert patient["resource"]["identifier"] == [{"system": "https://dacs-fhir.org/fhir/sid/patient-id/HOSP", "value": "P^1"}]
    assert patient["resource"]["gender"] == "female" and patient["resource"]["birthDate"] == "1960-05-06"


def test_projection_totals_sum_planes_and_counts_are_integers():
    bundle = fhir.to_bundle(fluoro_report())
    comps = _components(_summary(bundle))
    assert comps[(DCM, "121058")]["valueCodeableConcept"]["coding"][0]["code"] == "113704"
    assert comps[(DCM, "113722")]["valueQuantity"]["value"] == pytest.approx(200.0)
    assert comps[(DCM, "113722")]["valueQuantity"]["code"] == "mGy.cm2"
    assert comps[(DCM, "113725")]["valueQuantity"]["value"] == pytest.approx(3.52)
    assert comps[(DCM, "113731")]["valueInteger"] == 30
    assert comps[(DCM, "113812")]["valueInteger"] == 3
    event = _components(_by_type(bundle, "Observation")[1]["resource"])
    assert event[(DCM, "113768")]["valueInteger"] == 15
    assert event[(DCM, "112011")]["valueQuantity"]["value"] == -30.0
    assert event[(DCM, "113721")]["valueCodeableConcept"]["coding"][0] == {
        "system": "http://snomed.info/sct", "code": "44491008", "display": "Fluoroscopy"}  # SRT P5-06000 goes out as SCT
    assert event[(DCM, "113757")]["valueCodeableConcept"]["text"] == "Copper (Strip filter) 0.1-0.3 mm"


def test_mammography_agd_per_breast_with_target_site():
    s = _summary(fhir.to_bundle(mammo_report()))
    assert next(c for c in s["component"] if c["code"]["coding"][0]["code"] == "121058")[
        "valueCodeableConcept"]["coding"][0]["code"] == "71651007"
    agd = [c for c in s["component"] if c["code"]["coding"][0]["code"] == "111637"]
    sites = {c["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in agd}
    assert sites == {"80248007": 1.30, "73056007": 1.28}
    assert all(c["extension"][0]["url"] == fhir.EXT_TARGET_SITE for c in agd)


def test_radiopharmaceutical_components():
    report = rp_report()
    s = _summary(fhir.to_bundle(report))
    comps = _components(s)
    sct = "http://snomed.info/sct"
    assert comps[(DCM, "121058")]["valueCodeableConcept"]["coding"][0]["code"] == "113502"
    assert comps[(sct, "349358000")]["valueCodeableConcept"]["coding"][0]["code"] == "35321007"
    assert comps[(sct, "89457008")]["valueCodeableConcept"]["coding"][0]["code"] == "77004003"
    assert comps[(sct, "410675002")]["valueCodeableConcept"]["coding"][0]["code"] == "47625008"
    assert comps[(DCM, "113507")]["valueQuantity"] == {"value": 394.0, "unit": "MBq", "system": UCUM, "code": "MBq"}
    assert comps[(DCM, "113839")]["valueQuantity"]["value"] == 7.486
    assert comps[(DCM, "113518")]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "39607008"
    assert s["effectiveDateTime"] == "2024-03-04T07:30:00+00:00"  # 123003 Radiopharmaceutical Start DateTime
    device = _by_type(fhir.to_bundle(report), "Device")[0]["resource"]
    assert device["type"]["coding"][0]["code"] == "PT"


def test_unknown_authorizing_person_is_said_so_not_invented():
    s = _summary(fhir.to_bundle(fluoro_report()))
    assert s["performer"] == [{"type": "Practitioner", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}]


def test_device_identifiers_follow_modality_device():
    d = _by_type(fhir.to_bundle(ct_report()), "Device")[0]["resource"]
    by_type = {i["type"]["coding"][0]["code"]: i for i in d["identifier"]}
    assert by_type["device-uid"]["value"] == "urn:oid:1.2.3.99"
    assert by_type["SNO"]["value"] == "73254" and d["serialNumber"] == "73254"
    assert by_type["application-entity"]["value"] == "CT01"
    assert {n["type"]: n["name"] for n in d["deviceName"]}["model-name"] == "SOMATOM Definition Flash"
    assert d["type"]["coding"][0]["code"] == "CT"


def test_report_without_patient_id_or_accession():
    report = ct_report(patient=Patient(), study=Study(instance_uid="1.2.3.4"))
    bundle = fhir.to_bundle(report)
    assert _by_type(bundle, "ServiceRequest") == []
    patient = _by_type(bundle, "Patient")[0]["resource"]
    assert patient["identifier"][0]["value"] == "1.2.3.4"
    assert "basedOn" not in _summary(bundle)
    assert [i for i in validate_bundle(bundle) if i.severity == "error"] == []


def test_image_header_report_has_no_sr_identifier():
    report = fluoro_report(source=SOURCE_IMAGE)
    ids = _summary(fhir.to_bundle(report))["identifier"]
    assert [i["system"] for i in ids] == [fhir.SYS_DOSE_SUMMARY]


def test_naive_dicom_times_are_local_time():
    naive = datetime(2024, 3, 1, 10, 0, 0)
    report = ct_report(started=naive)
    assert _summary(fhir.to_bundle(report))["effectiveDateTime"] == naive.astimezone().isoformat()


def test_large_fluoroscopy_report_maps_and_validates():
    bundle = fhir.to_bundle(fluoro_report(300))
    assert len(_summary(bundle)["hasMember"]) == 300
    assert [i for i in validate_bundle(bundle) if i.severity == "error"] == []


def test_report_without_study_uid_is_a_mapping_error():
    from dacs_fhir.errors import MappingError

    with pytest.raises(MappingError):
        fhir.to_bundle(ct_report(study=Study(instance_uid="")))


def test_unknown_ae_title_is_said_so_and_the_device_keeps_a_key():
    report = fluoro_report(device=Device(manufacturer="CANON_MEC", model="Platinum43"))
    bundle = fhir.to_bundle(report)
    device = _by_type(bundle, "Device")[0]
    ae = next(i for i in device["resource"]["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == "application-entity")
    assert "value" not in ae and ae["_value"]["extension"][0]["valueCode"] == "unknown"
    key = device["resource"]["identifier"][0]
    assert key == {"system": "https://dacs-fhir.org/fhir/sid/device", "value": report.device.key}
    assert [i for i in validate_bundle(bundle) if i.severity == "error"] == []
    get_fhir_model_class("Device").model_validate(device["resource"])
