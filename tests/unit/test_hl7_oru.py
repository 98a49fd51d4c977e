"""DoseReport -> ORU^R01 v2.5.1: valid for hl7apy, OBX with the codes, values and UCUM units of the FHIR summary."""
from __future__ import annotations

from datetime import date, datetime

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from dacs_fhir.domain import (
    CT, PROJECTION, SOURCE_RDSR, AccumulatedDose, Concept, DoseReport, Measurement, Patient, PersonName, Quantity, Study,
)
from dacs_fhir.mappers.hl7v2 import to_oru
from dacs_fhir.mappers.hl7v2.oru import coding_scheme, number, summary_observation, text_lines


def _m(code, value, unit, qualifier=None):
    return Measurement(Concept("DCM", code), Quantity(value, unit), qualifier)


def ct_report(**changes):
    r = DoseReport(
        sop_instance_uid="1.2.3.4.5", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=CT, source=SOURCE_RDSR,
        study=Study(instance_uid="1.2.3.4", accession_number="ACC|7", started=datetime(2024, 3, 1, 10, 0, 0)),
        patient=Patient(id="P^1", issuer="HOSP", name=PersonName("Müller", ("Anna", "B")), birth_date=date(1960, 5, 6), sex="F"),
        accumulated=(AccumulatedDose(measurements=(_m("113813", 724.52, "mGy.cm"), _m("113812", 4, "{events}"))),),
    )
    return r.with_(**changes)


def _rows(text):
    msg = hl7.parse(text)
    rows = []
    for o in msg.segments("OBX"):
        unit = str(o(6)(1)(1)) if str(o(6)) else ""
        rows.append((str(o(2)), str(o(3)(1)(1)), str(o(3)(1)(3)), str(o(4)), msg.unescape(str(o(5))), unit))
    return msg, rows


def assert_obx_match_fhir(report):
    """Every NM OBX is a summary component with the same code, value and unit, and every quantity component has its OBX."""
    summary = summary_observation(report)
    msg, rows = _rows(to_oru(report))
    parse_message(str(msg), validation_level=VALIDATION_LEVEL.STRICT)
    nm = [(code, scheme, float(value), unit) for vt, code, scheme, _s, value, unit in rows if vt == "NM"]
    expected = []
    for c in summary["component"]:
        coding = c["code"]["coding"][0]
        if "valueQuantity" in c:
            q = c["valueQuantity"]
            expected.append((coding["code"], coding_scheme(coding["system"]), float(q["value"]), q["code"]))
        elif "valueInteger" in c:
            expected.append((coding["code"], coding_scheme(coding["system"]), float(c["valueInteger"]), ""))
    assert [(c, s, pytest.approx(v), u) for c, s, v, u in expected] == nm
    return msg, rows


def test_ct_oru_structure_and_values():
    report = ct_report()
    msg, rows = assert_obx_match_fhir(report)
    assert str(msg.segment("MSH")(9)) == "ORU^R01^ORU_R01" and str(msg["MSH.F12"]) == "2.5.1"
    assert msg.unescape(str(msg["PID.F3.R1.C1"])) == "P^1" and str(msg["PID.F3.R1.C4"]) == "HOSP"
    assert str(msg["PID.F5.R1.C1"]) == "Müller" and str(msg["PID.F7"]) == "19600506" and str(msg["PID.F8"]) == "F"
    assert msg.unescape(str(msg["OBR.F18"])) == "ACC|7" and msg.unescape(str(msg["OBR.F3.R1.C1"])) == "ACC|7"
    assert ("ST", "113014", "DCM", "", "1.2.3.4", "") in rows
    assert ("CWE", "121058", "DCM", "", "77477000^Computed Tomography X-Ray^SCT", "") in rows
    assert ("NM", "113813", "DCM", "", "724.52", "mGy.cm") in rows
    text = [r for r in rows if r[0] == "TX"]
    assert text and text[0][1:3] == ("73569-6", "LN") and "724.52 mGy.cm" in text[0][4]
    assert all(str(o(11)) == "F" for o in msg.segments("OBX"))


def test_control_id_and_corrected_status():
    msg = hl7.parse(to_oru(ct_report(), control_id="C1", corrected=True))
    assert str(msg["MSH.F10"]) == "C1"
    assert str(msg["OBR.F25"]) == "C" and {str(o(11)) for o in msg.segments("OBX")} == {"C"}


def test_biplane_totals_are_summed_and_mammo_agd_per_laterality():
    left, right = Concept("SCT", "7771000", "Left"), Concept("SCT", "24028007", "Right")
    report = ct_report(
        kind=PROJECTION,
        accumulated=(
            AccumulatedDose(measurements=(_m("113722", 160.0, "mGy.cm2"), _m("111637", 1.3, "mGy", left))),
            AccumulatedDose(measurements=(_m("113722", 40.5, "mGy.cm2"), _m("111637", 1.28, "mGy", right))),
        ),
    )
    _, rows = assert_obx_match_fhir(report)
    assert ("NM", "113722", "DCM", "", "200.5", "mGy.cm2") in rows
    agd = [r for r in rows if r[1] == "111637"]
    lat = [r for r in rows if r[1] == "272741003"]
    assert [a[4] for a in agd] == ["1.3", "1.28"]
    assert [(a[3], l[3]) for a, l in zip(agd, lat)] == [("1", "1"), ("2", "2")]
    assert lat[0][4].startswith("7771000^") and lat[1][4].startswith("24028007^")


def test_number_never_uses_an_exponent():
    assert number(1.6e-05) == "0.000016"
    assert number(160.0) == "160"
    assert number(724.52) == "724.52"


def test_long_summary_text_is_split_in_lines():
    text = ", ".join(f"Quantity number {i} = {i}.123456 mGy.cm2" for i in range(20))
    lines = text_lines(text)
    assert len(lines) > 1 and all(len(line) <= 150 for line in lines)
    assert ", ".join(lines) == text


@pytest.mark.corpus
def test_every_corpus_dose_object_gives_a_valid_oru_matching_fhir(corpus):
    from dacs_fhir.errors import RejectedInput
    from dacs_fhir.mappers import dicom

    checked = 0
    for path in sorted((corpus / "rdsr").glob("*.dcm")) + sorted((corpus / "images").glob("*.dcm")):
        try:
            report = dicom.parse(path)
        except (RejectedInput, ImportError):
            continue
        msg, _ = assert_obx_match_fhir(report)
        assert str(hl7.parse(str(msg)).segment("OBX")(5)) == report.study.instance_uid, path.name
        checked += 1
    assert checked >= 10
