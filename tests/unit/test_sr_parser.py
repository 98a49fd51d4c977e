"""Dose SR parser on SRs built in code (tests/sr_builders.py): templates, SOP classes, quirks, errors."""
from __future__ import annotations

from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

import sr_builders as B
from dacs_fhir.domain import CT, PROJECTION, RADIOPHARMACEUTICAL, SOURCE_PRIVATE_SR, SOURCE_RDSR
from dacs_fhir.errors import CorruptObject, MappingError, NotADoseObject
from dacs_fhir.mappers import dicom, dicom_sr, quirks
from dacs_fhir.mappers.sr_tree import read_tree


def parse_bytes(ds: Dataset, **kw):
    return dicom.parse(B.encode(ds, **kw))


# ---------------------------------------------------------------- CT (TID 10011)

def test_ct_report_header_totals_and_events():
    ds = B.build_ct_sr(events=3)
    r = parse_bytes(ds)
    assert (r.kind, r.source, r.template, r.modality) == (CT, SOURCE_RDSR, "10011", "CT")
    assert r.sop_instance_uid == ds.SOPInstanceUID and r.study.instance_uid == ds.StudyInstanceUID
    assert r.study.accession_number == "ACC0001" and r.study.modalities == ("CT",)
    assert r.patient.id == "PID1" and r.patient.sex == "F" and r.patient.age == "064Y"
    assert r.device.observer_uid == "1.2.3.4.5.6" and r.device.manufacturer == "ACME" and r.device.name == "ROOM1-OBS"
    assert r.procedure_reported.code == "P5-08000" and r.intent.code == "R-408C3"
    assert r.started == datetime(2024, 1, 2, 10, 16) and r.ended == datetime(2024, 1, 2, 10, 29)
    assert r.scope.code == "113014" and [s.code for s in r.source_of_dose_information] == ["113856"]
    assert r.total("113812").value == 3 and r.total("113813").value == 600.0
    assert [e.get("113830").value for e in r.events] == [10.5, 11.5, 12.5]
    assert [e.get("113838").value for e in r.events] == [100, 200, 300]
    e = r.events[0]
    assert e.uid == ds.SOPInstanceUID[:48] + ".1"
    assert (e.kind, e.protocol, e.comment) == (CT, "Protocol 0", "event 0")
    assert (e.event_type.code, e.target_region.code, e.phantom.code, e.procedure_context.code) == \
        ("P5-08001", "T-D4000", "113691", "P5-0808E")
    assert e.get("113825") .value == 400 and e.get("113828").value == 0.98 and e.get("113824").value == 5.5
    assert e.get("113733").value == 120 and e.sources[0].identification == "A"  # one source: lifted to the event
    assert r.quirks == ()


def test_ct_dual_source_keeps_source_values_apart():
    r = dicom_sr.parse_sr(B.build_ct_sr(events=1, sources=2))
    e = r.events[0]
    assert [s.get("113733").value for s in e.sources] == [120, 100]
    assert e.get("113733") is None


def test_ct_dose_check_tid_10015():
    r = dicom_sr.parse_sr(B.build_ct_sr(events=1, dose_check=True))
    dc = r.events[0].dose_check
    assert dc.dlp_alert_configured is True and dc.ctdivol_alert_configured is False  # SRT Yes, SCT No
    assert dc.dlp_notification_configured is False and dc.ctdivol_notification_configured is True
    assert dc.get("113903").value == 1000 and dc.get("113905").value == 1200 and dc.get("113912").value == 50
    assert dc.reasons == ("clinical need",)
    assert [(p.name.family, p.role.code) for p in dc.persons] == [("Auth", "113850")]
    assert [(p.name.family, p.role.code) for p in r.persons] == [("Auth", "113850")]


# ---------------------------------------------------------------- projection (TID 10001)

def test_projection_single_plane():
    r = parse_bytes(B.build_projection_sr(events=4))
    assert (r.kind, r.template, r.modality) == (PROJECTION, "10001", "XA")  # positioner angles: angiography
    acc = r.accumulated[0]
    assert acc.plane.code == "113622" and acc.reference_point_definition == "15cm from Isocenter toward Source"
    assert acc.get("113722").unit == "mGy.cm2" and acc.get("113722").value == pytest.approx(600.0)  # 6e-05 Gy.m2
    assert acc.get("113725").value == pytest.approx(8.4) and acc.get("113730").value == 24
    e = r.events[1]
    assert (e.plane.code, e.event_type.code, e.fluoro_mode.code, e.protocol) == ("113622", "P5-06000", "113631", "Fluoro Low")
    assert e.started == datetime(2024, 1, 2, 10, 0, 1)
    assert e.get("122130").value == pytest.approx(150.0) and e.get("113738").value == pytest.approx(2.1)
    assert e.get("113824").value == 0.6 and e.get("113736").value == 7.5 and e.get("113791").unit == "{pulse}/s"
    assert e.get("112011").value == 1 and e.get("112012") is None  # 'Value unknown': skipped, never 0
    f = e.filters[0]
    assert (f.type.code, f.material.code, f.thickness_min.value, f.thickness_max.value) == ("113650", "C-127F9", 0.3, 0.3)
    assert [(p.name.family, p.role.code) for p in r.persons] == [("Auth", "113850")]
    assert "empty-numeric" in r.quirks


def test_projection_biplane_one_accumulated_container_per_plane():
    r = dicom_sr.parse_sr(B.build_projection_sr(events=5, planes=("113620", "113621")))
    assert [a.plane.code for a in r.accumulated] == ["113620", "113621"]
    assert [a.get("113722").value for a in r.accumulated] == pytest.approx([450.0, 300.0])
    assert r.total("113722").value == pytest.approx(750.0)
    assert [e.plane.code for e in r.events] == ["113620", "113621"] * 2 + ["113620"]
    assert r.modality == "XA"


def test_mammography_agd_per_laterality():
    r = dicom_sr.parse_sr(B.build_mammo_sr())
    assert r.modality == "MG" and r.kind == PROJECTION
    acc = r.accumulated[0]
    assert acc.get("111637", "DCM", qualifier="T-04030").value == 1.30
    assert acc.get("111637", "DCM", qualifier="T-04020").value == 1.28
    assert [e.laterality.code for e in r.events] == ["G-A101", "G-A100"]
    assert [e.get("111631").value for e in r.events] == [1.30, 1.28]
    assert r.events[0].get("113736") == r.events[0].get("113736") and r.events[0].get("113736").value == 90.2
    assert "unit-spelling:uAs" in r.quirks


def test_dx_modality_without_fluoroscopy():
    ds = B.build_projection_sr(events=2)
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "113706":
            for child in item.ContentSequence:
                if child.ConceptNameCodeSequence[0].CodeValue == "113721":
                    child.ConceptCodeSequence = Sequence([B.D("113611", "Stationary Acquisition")])
                if child.ConceptNameCodeSequence[0].CodeValue == "112011":
                    child.ConceptNameCodeSequence = Sequence([B.D("113845", "Exposure Index")])
        if item.ConceptNameCodeSequence[0].CodeValue == "113702":
            for child in item.ContentSequence:
                if child.ConceptNameCodeSequence[0].CodeValue == "113730":
                    child.MeasuredValueSequence[0].NumericValue = "0"
    assert dicom_sr.parse_sr(ds).modality == "DX"


# ---------------------------------------------------------------- radiopharmaceutical (TID 10021)

@pytest.mark.parametrize("scheme,private", [("SRT", True), ("SCT", False)])
def test_radiopharmaceutical_administration(scheme, private):
    r = parse_bytes(B.build_rp_sr(scheme=scheme, private_effective_dose=private))
    assert (r.kind, r.template, r.modality) == (RADIOPHARMACEUTICAL, "10021", "PT")
    assert r.study.procedure_code.code == "P5-0A00A" and r.intent.code == "R-408C3"
    assert r.procedure_reported.code == "113502"
    a = r.administrations[0]
    assert a.agent.meaning == "Fluorodeoxyglucose F^18^" and a.agent_text == "Fluorodeoxyglucose F^18^"
    assert a.radionuclide.meaning == "^18^Fluorine" and a.half_life.value == 6586.2
    assert (a.activity.value, a.activity.unit) == (350, "MBq") and (a.effective_dose.value, a.effective_dose.unit) == (6.65, "mSv")
    assert a.started == datetime(2024, 1, 2, 9, 30) and a.ended == datetime(2024, 1, 2, 9, 31)
    assert a.route.meaning == "Intravenous route" and a.site.meaning == "Via vein"
    assert [(o.organ.meaning, o.laterality.meaning if o.laterality else None, o.dose.value) for o in a.organ_doses] == [
        ("Adrenal gland", "Right and left", 4.1), ("Bladder", None, 45.5)]
    assert {o.reference_authority for o in a.organ_doses} == {"ICRP Publication 128"}
    assert [(p.name.family, p.role.code) for p in a.persons] == [("Nurse", "113851")]
    assert r.patient.age == "064Y" and r.patient.sex == "F"  # TID 1007 fills the empty header
    assert (r.patient.height.value, r.patient.height.unit, r.patient.weight.value) == (1.65, "m", 70)
    assert ("private-container:99SHS-effective-dose" in r.quirks) is private


# ---------------------------------------------------------------- SOP classes, encodings

@pytest.mark.parametrize("sop_class", [B.XRAY_DOSE_SR, B.ENHANCED_SR, B.COMPREHENSIVE_SR, B.COMPREHENSIVE_3D_SR])
def test_sop_classes(sop_class):
    r = parse_bytes(B.build_ct_sr(events=2, sop_class=sop_class))
    assert r.sop_class_uid == sop_class and len(r.events) == 2 and r.total("113813").value == 300


@pytest.mark.parametrize("ts", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_transfer_syntaxes(ts):
    r = parse_bytes(B.build_projection_sr(events=3), transfer_syntax=ts)
    assert len(r.events) == 3 and r.total("113722").value == pytest.approx(450.0)


def test_large_fluoroscopy_report():
    r = parse_bytes(B.build_projection_sr(events=150))
    assert len(r.events) == 150 and len({e.uid for e in r.events}) == 150
    assert r.total("113730").value == 900


def test_is_sr():
    assert dicom_sr.is_sr(B.build_ct_sr(1))
    image = Dataset()
    image.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    image.Modality = "CT"
    assert not dicom_sr.is_sr(image)


# ---------------------------------------------------------------- quirks

def test_missing_template_identifier_is_inferred():
    ct = dicom_sr.parse_sr(B.build_ct_sr(events=1, template=False))
    xa = dicom_sr.parse_sr(B.build_projection_sr(events=1, template=False))
    assert (ct.template, xa.template) == ("10011", "10001")
    assert "missing-template-id" in ct.quirks and "missing-template-id" in xa.quirks


def test_events_without_uid_get_deterministic_uids():
    ds = B.build_projection_sr(events=3, with_uids=False)
    first, again = dicom_sr.parse_sr(ds), parse_bytes(ds)
    uids = [e.uid for e in first.events]
    assert uids == [e.uid for e in again.events] and len(set(uids)) == 3
    assert all(u.startswith("2.25.") and len(u) <= 64 and u[5:].isdigit() for u in uids)
    assert uids[0] == quirks.synthesize_uid(ds.SOPInstanceUID, PROJECTION, 0)
    assert "synthesized-event-uid" in first.quirks


def test_repeated_events_are_kept_once():
    r = dicom_sr.parse_sr(B.build_projection_sr(events=4, repeat_events=2))
    assert len(r.events) == 4 and "duplicate-events" in r.quirks


def test_events_sharing_a_uid_with_other_values_are_all_kept():
    ds = B.build_ct_sr(events=3)
    events = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "113819"]
    for e in events:
        for child in e.ContentSequence:
            if child.ValueType == "UIDREF":
                child.UID = "1.2.3.999"
    r = dicom_sr.parse_sr(ds)
    assert [e.get("113830").value for e in r.events] == [10.5, 11.5, 12.5]
    assert r.events[0].uid == "1.2.3.999" and len({e.uid for e in r.events}) == 3
    assert "reused-event-uid" in r.quirks and "duplicate-events" not in r.quirks


def test_unit_spellings_are_repaired_and_named():
    r = parse_bytes(B.build_projection_sr(events=2, dap_unit="Gym2"))
    assert r.total("113722").value == pytest.approx(300.0) and "unit-spelling:Gym2" in r.quirks
    ct = parse_bytes(B.build_ct_sr(events=1, dlp_unit="mGycm"))
    assert (ct.events[0].get("113838").value, ct.events[0].get("113838").unit) == (100, "mGy.cm")
    assert "unit-spelling:mGycm" in ct.quirks


def test_dap_in_dgy_cm2_and_dose_rp_in_mgy():
    """Canon Ultimax codes DAP in dGy.cm2 and Dose (RP) in mGy: both end in canonical units."""
    ds = B.build_projection_sr(events=1, dap_unit="dGy.cm2")
    for item in ds.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "113706":
            for child in item.ContentSequence:
                if child.ConceptNameCodeSequence[0].CodeValue == "113738":
                    child.MeasuredValueSequence[0].NumericValue = "0.384"
                    child.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = "mGy"
    e = dicom_sr.parse_sr(ds).events[0]
    assert (e.get("122130").value, e.get("122130").unit) == (pytest.approx(150.0), "mGy.cm2")  # 1.5 dGy.cm2
    assert (e.get("113738").value, e.get("113738").unit) == (0.384, "mGy")


def test_numeric_value_with_comma_or_spaces():
    ds = B.build_ct_sr(events=1)
    data = B.encode(ds).replace(b"10.5", b"10,5").replace(b"0.625 ", b"0 625 ")
    e = dicom.parse(data).events[0]
    assert e.get("113830").value == 10.5 and e.get("113826").value == 625
    assert "numeric-format" in dicom.parse(data).quirks


def test_utf8_text_under_latin1_is_repaired():
    ds = B.build_ct_sr(events=1)
    ds.ContentSequence[-2].ContentSequence[0].TextValue = "testæøå".encode("utf-8").decode("latin-1")
    r = parse_bytes(ds)
    assert r.events[0].protocol == "testæøå" and "utf8-as-latin1" in r.quirks
    ds.ContentSequence[-2].ContentSequence[0].TextValue = "Müller"  # genuine Latin-1 stays as it is
    r = parse_bytes(ds)
    assert r.events[0].protocol == "Müller" and "utf8-as-latin1" not in r.quirks


def test_snm3_and_private_codes():
    ds = B.build_projection_sr(events=1)
    event = ds.ContentSequence[-3]
    for child in event.ContentSequence:
        if child.ConceptNameCodeSequence[0].CodeValue == "123014":
            child.ConceptCodeSequence = Sequence([B.S("T-15710", "Hip joint", "SNM3")])
    event.ContentSequence.append(B.num(B.code("001", "99ACME", "Private dose"), "5", "mGy"))
    event.ContentSequence.append(B.coded(B.S("G-C171", "Laterality", "SNM3"), B.S("G-A100", "Right", "SNM3"), rel="HAS CONCEPT MOD"))
    r = dicom_sr.parse_sr(ds)
    e = r.events[0]
    assert e.target_region.code == "T-15710" and e.laterality.code == "G-A100"
    assert all(m.concept.scheme != "99ACME" for m in e.measurements)
    assert {"coding-scheme:SNM3", "private-codes:99ACME"} <= set(r.quirks)


def test_siemens_private_radiation_summary():
    ds = B._header(B.ENHANCED_SR)
    name = lambda c, m: B.code(c, "99SMS_RADSUM", m)  # noqa: E731
    B._root(ds, name("C-10", "Radiation Summary Report"), None, [
        B.num(name("C-200", "Total number of exposures"), "3", "1"),
        B.num(name("C-202", "Cumulative fluoro time"), "34.427", "s"),
        B.num(name("C-204", "Cumulative dose area product"), "0.2359", "Gy.cm^2"),
        B.datetime_(name("C-206", "Start of the examination"), "20210210145428"),
        B.datetime_(name("C-208", "End of the examination"), "20210210151638"),
        B.num(name("C-210", "Cumulative air kerma"), None, "mGy", qualifier=B.D("114007", "Measurement not attempted")),
    ])
    r = parse_bytes(ds)
    assert (r.source, r.kind, r.events) == (SOURCE_PRIVATE_SR, PROJECTION, ())
    assert r.total("113730").value == 34.427 and r.total("113722").value == pytest.approx(235.9)
    assert r.total("113725") is None and r.get("C-200", "99SMS_RADSUM").value == 3
    assert r.started == datetime(2021, 2, 10, 14, 54, 28) and r.ended == datetime(2021, 2, 10, 15, 16, 38)
    assert {"siemens-radiation-summary", "unit-spelling:Gy.cm^2", "empty-numeric"} <= set(r.quirks)


def test_patient_radiation_dose_report_tid_10030():
    ds = B._header("1.2.840.10008.5.1.4.1.1.88.73")
    ds.Modality = "CT"
    B._root(ds, B.D("128401", "Patient Radiation Dose Report"), "10030", [
        B.container(B.D("128402", "Radiation Dose Estimate"), [B.num(B.D("113839", "Effective Dose"), "2.5", "mSv")]),
    ])
    r = parse_bytes(ds)
    assert (r.template, r.kind, r.get("113839").value) == ("10030", CT, 2.5)


# ---------------------------------------------------------------- rejections

def test_non_dose_sr_is_not_a_dose_object():
    ds = B._header(B.ENHANCED_SR)
    B._root(ds, B.code("18748-4", "LN", "Diagnostic Imaging Report"), None, [
        B.text(B.code("121071", "DCM", "Finding"), "normal")])
    with pytest.raises(NotADoseObject) as err:
        parse_bytes(ds)
    assert "Diagnostic Imaging Report" in str(err.value) and "\n" not in str(err.value)


def test_dose_report_without_content_is_a_mapping_error():
    ds = B._header(B.XRAY_DOSE_SR)
    B._root(ds, B.D("113701", "X-Ray Radiation Dose Report"), "10001", [])
    with pytest.raises(MappingError):
        parse_bytes(ds)


def test_broken_sequence_bytes_are_corrupt():
    data = bytearray(B.encode(B.build_ct_sr(events=2)))
    item = data.find(b"\xfe\xff\x00\xe0", data.find(b"\x40\x00\x30\xa7")) + 4000  # an item deep in the content
    pos = data.find(b"\xfe\xff\x00\xe0", item)
    data[pos:pos + 4] = b"\x12\x34\x56\x78"
    with pytest.raises(CorruptObject) as err:
        dicom.parse(bytes(data))
    assert "\n" not in str(err.value)


def test_quirk_registry_names_where_each_was_seen():
    for name in ("utf8-as-latin1", "duplicate-events", "synthesized-event-uid", "empty-numeric", "missing-template-id",
                 "siemens-radiation-summary", "coding-scheme:SNM3", "numeric-format", "unit-annotation", "private-codes",
                 "unit-spelling:Gym2"):
        assert quirks.QUIRKS[name].seen_on
    for report in (dicom_sr.parse_sr(B.build_projection_sr(events=2, dap_unit="Gym2", with_uids=False, template=False)),):
        assert report.quirks and all(quirks.describe(n) is not None for n in report.quirks)


def test_quirk_functions():
    assert quirks.fix_unit("X-ray sources") == ("{X-ray sources}", "unit-annotation:X-ray sources")
    assert quirks.fix_unit("pulse/s") == ("{pulse}/s", "unit-annotation:pulse/s")
    assert quirks.fix_unit("uAs") == ("uA.s", "unit-spelling:uAs") and quirks.fix_unit("mGy") == ("mGy", None)
    assert quirks.fix_numeric_text(" 12,5 ") == ("12.5", "numeric-format")
    assert quirks.fix_numeric_text("1.5e-05") == ("1.5e-05", None)
    assert quirks.repair_mojibake("testÃ¦Ã¸Ã¥", ["latin_1"]) == ("testæøå", "utf8-as-latin1")
    assert quirks.repair_mojibake("testÃ¦Ã¸Ã¥", ["utf_8"]) == ("testÃ¦Ã¸Ã¥", None)
    kept, names = quirks.dedup_by_uid(["a", "b", "a"], lambda x: x)
    assert (kept, names) == (["a", "b"], ["duplicate-events"])
    kept, names = quirks.dedup_by_uid(["a1", "b1", "a2"], lambda x: x[0], lambda x, y: x == y, lambda x, i: f"new{i}")
    assert (kept, names) == (["a1", "b1", "new2"], ["reused-event-uid"])
    assert quirks.fix_unit("Gy m2") == ("Gy.m2", "unit-spelling:Gy m2")
    assert quirks.fix_unit("cm^2") == ("cm2", "unit-spelling:cm^2")
    assert quirks.fix_unit("µGy") == ("uGy", "unit-spelling:µGy")


def test_tree_reader_walks_by_code():
    root = read_tree(B.build_ct_sr(events=1))
    assert root.is_("113701") and root.template == "10011"
    event = root.find("113819")
    assert event.find("113769").text.endswith(".1") and event.find_snomed(("G-C32C", "408730004")) is not None
    assert event.find("113829").find("113830").numeric == ("10.5", "mGy", None)


@pytest.mark.parametrize("ts", [None, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_floating_point_value_when_numeric_value_is_empty(ts):
    ds = B.build_ct_sr(events=1)
    dose = ds.ContentSequence[-2].ContentSequence[-2]
    mv = dose.ContentSequence[0].MeasuredValueSequence[0]
    mv.NumericValue = ""
    mv.FloatingPointValue = 12.25
    r = dicom_sr.parse_sr(ds) if ts is None else parse_bytes(ds, transfer_syntax=ts)
    assert r.events[0].get("113830").value == 12.25


def _undefined_lengths(ds: Dataset) -> None:
    """Every sequence and item below the top-level Content Sequence written with undefined length."""
    for item in ds.ContentSequence:
        for elem in item.iterall():
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for sub in elem.value:
                    sub.is_undefined_length_sequence_item = True


@pytest.mark.parametrize("ts", [None, ImplicitVRLittleEndian, ExplicitVRBigEndian])
@pytest.mark.parametrize("undefined", [False, True])
def test_sequences_repeated_across_events_read_as_pydicom_reads_them(ts, undefined):
    # concept names, units and values recur byte for byte in every event; the raw reader parses each once
    ds = B.build_projection_sr(events=8, planes=("113620", "113621"), dap_unit="Gym2", repeat_events=2)
    if undefined:
        _undefined_lengths(ds)
    data = B.encode(ds, **({"transfer_syntax": ts} if ts else {}))
    walked = dicom.read_dataset(data)
    for _ in walked.iterall():  # pydicom parses every sequence itself: the reference reading
        pass
    from_bytes, from_pydicom = dicom.parse(data), dicom.parse(walked)
    assert from_bytes == from_pydicom and repr(from_bytes) == repr(from_pydicom)
    assert len(from_bytes.events) == 8 and from_bytes.total("113722").value > 0 and len(from_bytes.accumulated) == 2
