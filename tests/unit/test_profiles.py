"""Profile checks: the shipped StructureDefinitions reject what they constrain, with FHIRPath-like paths."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path

import pytest

from dacs_fhir import profiles
from dacs_fhir.domain import CT, SOURCE_RDSR, AccumulatedDose, Concept, Device, DoseReport, IrradiationEvent, Measurement, Patient, Quantity, Study
from dacs_fhir.mappers import fhir

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
RDS = "http://hl7.org/fhir/uv/radiation-dose-summary/StructureDefinition/"


def _report() -> DoseReport:
    return DoseReport(
        sop_instance_uid="2.25.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=CT, source=SOURCE_RDSR,
        study=Study(instance_uid="2.25.1"), patient=Patient(id="PX"), modality="CT",
        device=Device(manufacturer="ACME", model="Scan 1", serial_number="S1", station_name="CT9"),
        started=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        accumulated=(AccumulatedDose(measurements=(Measurement(Concept("DCM", "113813"), Quantity(120.0, "mGy.cm")),)),),
        events=(IrradiationEvent(uid="2.25.1.9", kind=CT, measurements=(
            Measurement(Concept("DCM", "113830"), Quantity(5.0, "mGy")), Measurement(Concept("DCM", "113838"), Quantity(120.0, "mGy.cm")))),),
    )


@pytest.fixture
def bundle() -> dict:
    return fhir.to_bundle(_report())


def _resource(bundle, rtype, profile=None):
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == rtype and (profile is None or profile in r.get("meta", {}).get("profile", ())):
            return r
    raise LookupError(rtype)


def _summary(bundle):
    return _resource(bundle, "Observation", fhir.PROFILE_RDS_SUMMARY)


def _event(bundle):
    return _resource(bundle, "Observation", fhir.PROFILE_IRRADIATION_EVENT)


def _errors(resource):
    return [(i.path, i.message) for i in profiles.validate(resource) if i.severity == "error"]


def _shipped():
    """The JSON files of the package's profile folder."""
    return sorted((p for p in profiles.PROFILE_DIR.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)


def _component(obs, code):
    return next(i for i, c in enumerate(obs["component"]) if c["code"]["coding"][0]["code"] == code)


def test_mapped_bundle_is_clean(bundle):
    assert profiles.validate_bundle(bundle) == []


def test_every_shipped_structure_definition_is_used_by_the_mapping(bundle):
    """No placeholder profiles: each StructureDefinition is claimed by an emitted resource or used by one."""
    shipped = set(profiles.registry().profiles)
    claimed = {p for e in bundle["entry"] for p in e["resource"].get("meta", {}).get("profile", ())}
    mammo = fhir.to_bundle(_report().with_(accumulated=(AccumulatedDose(measurements=(
        Measurement(Concept("DCM", "111637"), Quantity(1.3, "mGy"), Concept("SCT", "80248007", "Left breast")),)),)))
    used_extensions = {x["url"] for c in _summary(mammo)["component"] for x in c.get("extension", ())}
    assert shipped == claimed | used_extensions


def test_rds_ig_sample_bundle_passes():
    sample = CORPUS / "fhir" / "rds-ig-bundle-sample.json"
    if not sample.is_file():
        pytest.skip(f"RDS IG sample bundle not found at {sample}")
    assert profiles.validate_bundle(json.loads(sample.read_text())) == []


def test_missing_subject_and_effective(bundle):
    s = _summary(bundle)
    del s["subject"], s["effectiveDateTime"]
    errors = _errors(s)
    assert ("Observation.subject", "minimum required = 1, but only found 0") in errors
    assert ("Observation.effective[x]", "minimum required = 1, but only found 0") in errors


def test_summary_code_must_be_the_loinc_code(bundle):
    s = _summary(bundle)
    s["code"] = {"coding": [{"system": "http://loinc.org", "code": "11502-2"}]}
    assert [p for p, _ in _errors(s)] == ["Observation.code"]


def test_wrong_unit_of_a_total_is_caught(bundle):
    s = _summary(bundle)
    n = _component(s, "113813")
    s["component"][n]["valueQuantity"].update(unit="Gy.m", code="Gy.m")
    errors = _errors(s)
    assert [p for p, _ in errors] == [f"Observation.component[{n}].valueQuantity"]
    assert "mGy.cm" in errors[0][1]


def test_wrong_value_type_of_a_component(bundle):
    s = _summary(bundle)
    n = _component(s, "113813")
    s["component"][n] = {"code": s["component"][n]["code"], "valueString": "120 mGy.cm"}
    assert _errors(s) == [(f"Observation.component[{n}].valueString", "type string not allowed here (allowed: Quantity)")]


def test_procedure_reported_is_required_and_bound(bundle):
    s = _summary(bundle)
    n = _component(s, "121058")
    s["component"][n]["valueCodeableConcept"] = {"coding": [{"system": fhir.c.SYS_DCM, "code": "113701"}]}
    assert [p for p, _ in _errors(s)] == [f"Observation.component[{n}].valueCodeableConcept"]
    del s["component"][n]
    assert ("Observation.component:procedureReported", "minimum required = 1, but only found 0") in _errors(s)


def test_performer_slicing_is_closed_to_practitioners(bundle):
    s = _summary(bundle)
    s["performer"] = [{"reference": "Organization/1"}]
    paths = [p for p, _ in _errors(s)]
    assert "Observation.performer[0]" in paths
    assert "Observation.performer:irradiationAutorizingPerson" in paths


def test_prohibited_and_mandatory_elements(bundle):
    s = _summary(bundle)
    s["dataAbsentReason"] = {"text": "x"}
    del s["valueString"]
    errors = dict(_errors(s))
    assert errors["Observation.dataAbsentReason"] == "element is prohibited (max = 0)"
    assert errors["Observation.value[x]"] == "minimum required = 1, but only found 0"
    event = _event(bundle)
    event["valueQuantity"] = {"value": 1}
    assert _errors(event) == [("Observation.valueQuantity", "element is prohibited (max = 0)")]


def test_part_of_identifier_must_be_the_study_instance_uid(bundle):
    s = _summary(bundle)
    s["partOf"][0]["identifier"]["system"] = "urn:ietf:rfc:3986"
    assert [p for p, _ in _errors(s)] == ["Observation.partOf[0].identifier.system"]


def test_event_identifier_and_components(bundle):
    event = _event(bundle)
    broken = copy.deepcopy(event)
    broken["identifier"][0]["system"] = "urn:ietf:rfc:3986"
    assert [p for p, _ in _errors(broken)] == ["Observation.identifier[0].system"]
    broken = copy.deepcopy(event)
    broken["identifier"] = []
    assert ("Observation.identifier", "minimum required = 1, but only found 0") in _errors(broken)
    broken = copy.deepcopy(event)
    n = _component(broken, "113830")
    broken["component"].append(copy.deepcopy(broken["component"][n]))
    assert _errors(broken) == [("Observation.component:meanCTDIvol", "maximum allowed = 1, but found 2")]
    broken = copy.deepcopy(event)
    broken["effectiveDateTime"] = "2024-01-02T03:04"  # FHIR dateTime needs seconds and an offset with a time
    assert [p for p, _ in _errors(broken)] == ["Observation.effectiveDateTime"]


def test_modality_device_needs_ae_title_and_cid33_type(bundle):
    device = _resource(bundle, "Device")
    assert _errors(device) == []
    broken = copy.deepcopy(device)
    broken["identifier"] = [i for i in broken["identifier"] if i["type"]["coding"][0]["code"] != "application-entity"]
    assert _errors(broken) == [("Device.identifier:aeTitle", "minimum required = 1, but only found 0")]
    broken = copy.deepcopy(device)
    broken["type"]["coding"][0]["code"] = "XYZ"
    assert [p for p, _ in _errors(broken)] == ["Device.type"]


def test_unknown_profile_is_a_warning_only():
    issues = profiles.validate({"resourceType": "Patient", "meta": {"profile": ["http://example.org/StructureDefinition/x"]}})
    assert [i.severity for i in issues] == ["warning"]


def test_bundle_paths_and_dangling_references(bundle):
    s = _summary(bundle)
    del s["subject"]
    s["device"]["reference"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    index = next(i for i, e in enumerate(bundle["entry"]) if e["resource"] is s)
    paths = [i.path for i in profiles.validate_bundle(bundle)]
    assert f"Bundle.entry[{index}].resource.subject" in paths
    assert f"Bundle.entry[{index}].resource.device.reference" in paths


def test_reference_targets_are_checked(bundle):
    s = _summary(bundle)
    s["focus"] = [{"reference": "Patient/1"}]
    assert _errors(s) == [("Observation.focus[0]", "reference to Patient, expected ImagingStudy")]


def test_implementation_guide_lists_our_profiles():
    from fhir.resources.R4B.implementationguide import ImplementationGuide

    data = files("dacs_fhir") / "data"
    ig = json.loads((data / "ig" / "ImplementationGuide-dacs-fhir.json").read_text(encoding="utf-8"))
    ImplementationGuide.model_validate(ig)
    listed = {r["reference"]["reference"] for r in ig["definition"]["resource"]}
    ours = set()
    for path in _shipped():
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc["url"].startswith("https://dacs-fhir.org/fhir/"):
            ours.add(f"{doc['resourceType']}/{doc['id']}")
    assert listed == ours
    assert ig["dependsOn"][0]["packageId"] == "hl7.fhir.uv.radiation-dose-summary" and ig["dependsOn"][0]["version"] == "1.0.0"


def test_shipped_definitions_are_valid_r4_resources():
    from fhir.resources.R4B import get_fhir_model_class

    for path in _shipped():
        doc = json.loads(path.read_text(encoding="utf-8"))
        get_fhir_model_class(doc["resourceType"]).model_validate(doc)
        assert path.name == f"{doc['resourceType']}-{doc['id']}.json"


def test_profiles_are_loaded_from_the_package():
    reg = profiles.registry()
    urls = {json.loads(p.read_text(encoding="utf-8"))["url"] for p in _shipped()}
    assert len(reg.profiles) >= 5 and set(reg.profiles) <= urls
    assert fhir.PROFILE_RDS_SUMMARY in reg.profiles and fhir.PROFILE_IRRADIATION_EVENT in reg.profiles
    assert reg.valuesets, "the value sets of required bindings were not loaded"


@pytest.fixture
def no_profiles(tmp_path, monkeypatch):
    """The registry pointed at a folder without StructureDefinitions (an install missing its package data)."""
    (tmp_path / "ValueSet-only.json").write_text(json.dumps(
        {"resourceType": "ValueSet", "url": "urn:x", "compose": {"include": []}}), encoding="utf-8")
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    profiles.registry.cache_clear()
    yield tmp_path
    profiles.registry.cache_clear()


def test_validation_refuses_to_run_without_profiles(no_profiles, bundle):
    with pytest.raises(profiles.ProfilesMissing, match="no StructureDefinition found"):
        profiles.validate_bundle(bundle)
    with pytest.raises(profiles.ProfilesMissing):
        profiles.validate(_summary(bundle))


def test_a_missing_profile_folder_is_refused_too(tmp_path):
    with pytest.raises(profiles.ProfilesMissing):
        profiles.Registry.load(tmp_path / "absent")
