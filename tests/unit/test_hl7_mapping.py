"""ADT / ORM / OMI -> FHIR transaction Bundles (pure mapping), checked against the corpus ground truth."""
from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.bundle import Bundle

from dacs_fhir.hl7v2 import decode
from dacs_fhir.hl7v2.errors import ContentError
from dacs_fhir.mappers.hl7v2.adt import patient_bundle, prior_identifiers
from dacs_fhir.mappers.hl7v2.datatypes import authority_system
from dacs_fhir.mappers.hl7v2.orders import order_bundle


def _truth(corpus, name):
    for f in json.loads((corpus / "ground_truth.json").read_text())["files"]:
        if f["name"] == name:
            return f["hl7"]
    pytest.skip(f"{name} not in ground truth")


def _resources(bundle, rtype):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _valid(bundle):
    Bundle.model_validate(bundle)  # every resource parses in the R4B models
    return bundle


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["adt-a01-fhirconverter-01.hl7", "adt-a04-fhirconverter-01.hl7", "adt-a08-dcm4che-mesa.hl7", "adt-a31-dcm4che-update-person.hl7"])
def test_adt_patient_matches_pid(corpus, name):
    gt = _truth(corpus, name)
    bundle = _valid(patient_bundle(decode((corpus / "hl7v2" / name).read_bytes())))
    (patient,) = _resources(bundle, "Patient")
    first_id = gt["PID-3 patient id(s)"].split("~")[0].split("^")
    assert patient["identifier"][0]["value"] == first_id[0]
    ns = first_id[3].split("&")[0]
    assert patient["identifier"][0]["system"].endswith("/" + ns)
    assert len(patient["identifier"]) == len(gt["PID-3 patient id(s)"].split("~"))
    family = gt["PID-5 name"].split("^")[0].split("&")[0]
    assert patient["name"][0]["family"] == family
    birth = gt["PID-7 birth"][:8]
    assert patient["birthDate"] == f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}"
    assert patient["gender"] == {"M": "male", "F": "female"}[gt["PID-8 sex"][0]]
    assert bundle["entry"][0]["request"]["method"] == "PUT"
    assert bundle["entry"][0]["request"]["url"].endswith(f"|{first_id[0]}")


@pytest.mark.corpus
def test_omi_o23_service_request_keyed_by_ipc1(corpus):
    gt = _truth(corpus, "omi-o23-dcm4che-imaging-order.hl7")
    bundle = _valid(order_bundle(decode((corpus / "hl7v2" / "omi-o23-dcm4che-imaging-order.hl7").read_bytes())))
    (sr,) = _resources(bundle, "ServiceRequest")
    accession, _, study_uid, _, modality = gt["IPC-1..5 accession/req.proc/study UID/SPS/modality"][0]
    acsn = sr["identifier"][0]
    assert acsn["value"] == accession and acsn["type"]["coding"][0]["code"] == "ACSN"
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}.items() <= next(i for i in sr["identifier"] if i["system"] == "urn:dicom:uid").items()
    code, text, scheme = gt["OBR-4 universal service id"][0].split("^")
    assert sr["code"]["coding"][0]["code"] == code and sr["code"]["coding"][0]["system"] == "http://loinc.org"
    assert sr["category"][0]["coding"][0]["code"] == modality
    assert sr["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert bundle["entry"][1]["request"]["url"] == f"ServiceRequest?identifier={acsn['system']}|{accession}"


@pytest.mark.corpus
def test_orm_o01_v231_accession_from_obr18_and_study_uid_from_zds(corpus):
    gt = _truth(corpus, "orm-o01-dcm4che-mesa.hl7")
    bundle = _valid(order_bundle(decode((corpus / "hl7v2" / "orm-o01-dcm4che-mesa.hl7").read_bytes())))
    (sr,) = _resources(bundle, "ServiceRequest")
    assert sr["identifier"][0]["value"] == gt["OBR-18 (accession in IHE SWF)"][0]
    assert f"urn:oid:{gt['ZDS-1 study instance UID'].split('^')[0]}" in [i["value"] for i in sr["identifier"]]
    placer = gt["ORC-2/3 placer/filler"][0].split("|")[0].split("^")
    assert any(i["value"] == placer[0] and i["type"]["coding"][0]["code"] == "PLAC" for i in sr["identifier"])
    assert sr["status"] == "active"


@pytest.mark.corpus
def test_order_without_accession_is_a_content_error(corpus):
    with pytest.raises(ContentError) as info:
        order_bundle(decode((corpus / "hl7v2" / "orm-o01-fhirconverter-ct-head.hl7").read_bytes()))
    assert info.value.ack_code == "AE"
    assert (info.value.location.segment, info.value.location.field) == ("OBR", 18)


@pytest.mark.corpus
def test_a40_prior_identifier(corpus):
    gt = _truth(corpus, "adt-a40-dcm4che-patient-merge.hl7")
    inb = decode((corpus / "hl7v2" / "adt-a40-dcm4che-patient-merge.hl7").read_bytes())
    (prior,) = prior_identifiers(inb)
    assert prior["value"] == gt["MRG-1"].split("^")[0]
    assert _resources(patient_bundle(inb), "Patient")[0]["identifier"][0]["value"] == gt["PID-3 patient id(s)"].split("^")[0]


def test_weight_and_height_obx_become_vital_sign_observations():
    raw = (
        "MSH|^~\\&|RIS|H|DACS|R|20240101120000||ADT^A08|77|P|2.5.1\r"
        "EVN||20240101120000+0100\r"
        "PID|||55^^^&1.2.3&ISO||Doe^Jo||19800203|F|||Main St 1^^Town^^1234^CH^H\r"
        "OBX|1|NM|29463-7^Body weight^LN||72500|g\r"
        "OBX|2|ST|^BODY HEIGHT||1,82|m\r"
        "OBX|3|NM|8867-4^Heart rate^LN||60|/min\r"
    ).encode()
    bundle = _valid(patient_bundle(decode(raw)))
    (patient,) = _resources(bundle, "Patient")
    assert patient["identifier"][0] == {"system": "urn:oid:1.2.3", "value": "55"}
    assert patient["address"][0] == {"line": ["Main St 1"], "city": "Town", "postalCode": "1234", "country": "CH", "use": "home"}
    obs = {o["code"]["coding"][0]["code"]: o for o in _resources(bundle, "Observation")}
    assert set(obs) == {"29463-7", "8302-2"}
    assert obs["29463-7"]["valueQuantity"]["value"] == 72.5 and obs["29463-7"]["valueQuantity"]["code"] == "kg"
    assert obs["8302-2"]["valueQuantity"]["value"] == 182 and obs["8302-2"]["valueQuantity"]["code"] == "cm"
    assert obs["8302-2"]["subject"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert obs["8302-2"]["effectiveDateTime"] == "2024-01-01T12:00:00+01:00"
    assert all(e["request"]["ifNoneExist"].startswith("identifier=") for e in bundle["entry"][1:])


@pytest.mark.parametrize(
    "pid, field",
    [("PID|||||Doe^Jo", 3), ("PID|||1^^^X||Doe||19991340", 7), ("PID|||1^^^X||Doe|||Q", 8)],
)
def test_content_errors_carry_their_location(pid, field):
    raw = f"MSH|^~\\&|RIS|H|DACS|R|20240101||ADT^A01|1|P|2.4\r{pid}\r".encode()
    with pytest.raises(ContentError) as info:
        patient_bundle(decode(raw))
    assert (info.value.location.segment, info.value.location.field) == ("PID", field)


def test_authority_system():
    assert authority_system("", "1.2.840.1", "ISO") == "urn:oid:1.2.840.1"
    assert authority_system("HOSP") == "https://dacs-fhir.org/fhir/sid/patient-id/HOSP"
    assert authority_system("", "https://example.org/ids", "URI") == "https://example.org/ids"


def test_patient_identifier_system_agrees_with_the_dicom_mapper():
    from dacs_fhir.mappers import fhir
    for issuer in ("ADT1", "1.2.840.99", "urn:example:ids", ""):
        assert authority_system(issuer) == fhir.authority_system(issuer, "patient-id")
    assert authority_system("HOSP", "1.2.3", "ISO") == fhir.authority_system("HOSP", "patient-id")


def test_orm_cancel_and_several_orders_in_one_message():
    raw = (
        "MSH|^~\\&|RIS|H|DACS|R|20240101||ORM^O01|9|P|2.3.1\r"
        "PID|||77^^^HOSP||Doe^Jo\r"
        "ORC|CA|P1^RIS|F1^RIS\rOBR|1|P1^RIS|F1^RIS|CT1^CT head^L||||||||||||||ACC1\rZDS|1.2.3.1^100^Application^DICOM\r"
        "ORC|NW|P2^RIS|F2^RIS\rOBR|2|P2^RIS|F2^RIS|CT2^CT chest^L||||||||||||||ACC2\rZDS|1.2.3.2^100^Application^DICOM\r"
    ).encode()
    bundle = _valid(order_bundle(decode(raw)))
    srs = _resources(bundle, "ServiceRequest")
    assert [(s["identifier"][0]["value"], s["status"]) for s in srs] == [("ACC1", "revoked"), ("ACC2", "active")]
    assert [next(i["value"] for i in s["identifier"] if i["system"] == "urn:dicom:uid") for s in srs] == ["urn:oid:1.2.3.1", "urn:oid:1.2.3.2"]
    assert [s["code"]["text"] for s in srs] == ["CT head", "CT chest"]


def test_fields_are_read_by_content_not_by_the_claimed_version():
    # claims 2.3 but carries a v2.5 IPC segment; patient id only in PID-2 (pre-2.3 style)
    raw = (
        "MSH|^~\\&|RIS|H|DACS|R|20240101||ORM^O01|V1|P|2.3\r"
        "PID||OLDSTYLE^^^HOSP|||||19991231|O\r"
        "ORC|NW|P9\rOBR|1|P9||XR1^Chest^L\rIPC|IPCACC|RP1|1.2.3.9|SPS1|DX\r"
    ).encode()
    bundle = _valid(order_bundle(decode(raw)))
    patient, sr = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
    assert patient["identifier"][0]["value"] == "OLDSTYLE" and patient["gender"] == "other"
    assert sr["identifier"][0]["value"] == "IPCACC"
    assert sr["category"][0]["coding"][0]["code"] == "DX"


@pytest.mark.parametrize(
    "msh9, handler, code",
    [("ADT^A28", "apply_patient", None), ("ADT^A31^ADT_A05", "apply_patient", None), ("ADT^A40^ADT_A39", "apply_merge", None),
     ("OMI^O23^OMI_O23", "apply_order", None), ("ORM^O01", "apply_order", None),
     ("ADT^A03", None, "201"), ("ORM^O02", None, "201"), ("ORU^R01", None, "200"), ("SIU^S12", None, "200")],
)
def test_routing_by_message_type(msh9, handler, code):
    from dacs_fhir.hl7v2.errors import MessageRejected
    from dacs_fhir.hl7v2.receiver import route

    inb = decode(f"MSH|^~\\&|A|B|C|D|||{msh9}|1|P|2.5.1\rPID|||1\r".encode())
    if handler:
        assert route(inb).__name__ == handler
    else:
        with pytest.raises(MessageRejected) as info:
            route(inb)
        assert (info.value.ack_code, info.value.code) == ("AR", code)


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["adt-a01-fhirconverter-01.hl7", "adt-a04-fhirconverter-01.hl7", "adt-a08-dcm4che-mesa.hl7",
                                  "adt-a31-dcm4che-update-person.hl7", "adt-a40-dcm4che-patient-merge.hl7",
                                  "omi-o23-dcm4che-imaging-order.hl7", "orm-o01-dcm4che-mesa.hl7"])
def test_mapped_resources_pass_the_store_validation(corpus, name):
    """The receiver writes its bundles without the store's R4 validation: the mapping must give valid resources
    (R4B models and required bindings), whatever the feed."""
    from dacs_fhir.store import validation

    inb = decode((corpus / "hl7v2" / name).read_bytes())
    bundle = order_bundle(inb) if inb.message_code in ("ORM", "OMI") else patient_bundle(inb)
    for entry in bundle["entry"]:
        validation.validate(entry["resource"])


def test_odd_field_values_still_map_to_valid_resources():
    from dacs_fhir.store import validation

    raw = ("MSH|^~\\&|RIS|HOSP|DACS|RAD|20240101120000||ADT^A08|X1|P|2.5.1\r"
           "PID|1||A,1|2\\F\\3^^^HOSP^MR~^^^OTHER||^^^^^^L|| |Q|||^^^^^^^||||||||||||||||\r"
           "OBX|1|NM|29463-7^Body weight^LN||72,5|kg|||||F\r").encode()
    bundle = patient_bundle(decode(raw))  # odd but not wrong: mapped, not refused
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Observation"]
    for entry in bundle["entry"]:
        validation.validate(entry["resource"])
