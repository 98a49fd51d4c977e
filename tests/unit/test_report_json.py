"""The JSON form of the domain model is lossless for every dataclass, meanings and time zones included."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from dacs_fhir.domain import (
    CT,
    SOURCE_RDSR,
    AccumulatedDose,
    Concept,
    Device,
    DoseCheck,
    DoseReport,
    IrradiationEvent,
    Measurement,
    OrganDose,
    Patient,
    Person,
    PersonName,
    Quantity,
    RadiopharmaceuticalAdministration,
    Study,
    XRayFilter,
    XRaySource,
)
from dacs_fhir.mappers.report_json import dump, load

CEST = timezone(timedelta(hours=2))


def concept(code: str, meaning: str, scheme: str = "DCM") -> Concept:
    return Concept(scheme, code, meaning)


def full_report() -> DoseReport:
    """Every dataclass of the domain model, with every kind of value (tz-aware, naive, bool, nested tuples)."""
    q = Quantity(0.1 + 0.2, "mGy")  # a float that only an exact repr keeps
    person = Person(PersonName("Müller", ("Jürgen", "K"), "Dr", "PhD"), concept("113850", "Irradiation Authorizing"), "ID7", "Clinic")
    event = IrradiationEvent(
        uid="1.2.3.1",
        kind="CT",
        started=datetime(2024, 1, 2, 10, 11, 12, 345678, tzinfo=CEST),
        plane=concept("113622", "Single Plane"),
        event_type=concept("116152004", "Spiral Acquisition", "SCT"),
        protocol="Thorax ÄÖÜ",
        target_region=concept("T-D3000", "Chest", "SRT"),
        laterality=concept("24028007", "Right", "SCT"),
        phantom=concept("113691", "IEC Body Dosimetry Phantom"),
        reference_point_definition="15cm from Isocenter",
        fluoro_mode=concept("113631", "Pulsed"),
        procedure_context=concept("P5-0000", "ctx", "99X"),
        comment="c",
        measurements=(Measurement(concept("113830", "Mean CTDIvol"), q), Measurement(concept("111637", "AGD"), Quantity(1e-300, "mGy"), concept("80248007", "Left breast", "SCT"))),
        filters=(XRayFilter(concept("113650", "Strip filter"), concept("12503006", "Aluminum", "SCT"), Quantity(0.94, "mm"), Quantity(1.06, "mm")),),
        sources=(XRaySource("A", (Measurement(concept("113733", "KVP"), Quantity(120.0, "kV")),)), XRaySource("B")),
        dose_check=DoseCheck(True, False, None, True, (Measurement(concept("113904", "DLP Alert Value"), Quantity(1000.0, "mGy.cm")),), ("reason 1",), (person,)),
        codes=((concept("111632", "Anode Target Material"), concept("26194003", "Tungsten", "SCT")),),
    )
    admin = RadiopharmaceuticalAdministration(
        uid="1.2.3.9",
        agent=concept("35321007", "Fluorodeoxyglucose F^18^", "SCT"),
        agent_text="FDG",
        radionuclide=concept("77004003", "^18^Fluorine", "SCT"),
        half_life=Quantity(6586.2, "s"),
        started=datetime(2024, 1, 2, 9, 0),
        ended=datetime(2024, 1, 2, 9, 1, tzinfo=timezone.utc),
        route=concept("47625008", "Intravenous route", "SCT"),
        site=concept("59820001", "Blood vessel", "SCT"),
        activity=Quantity(394.0, "MBq"),
        effective_dose=Quantity(7.486, "mSv"),
        organ_doses=(OrganDose(concept("23451007", "Adrenal gland", "SCT"), Quantity(4.73, "mGy"), concept("51440002", "Right and left", "SCT"), Quantity(0.014, "kg"), "MIRD", "ICRP 128"),),
        persons=(person,),
        measurements=(Measurement(concept("123005", "Radiopharmaceutical Volume"), Quantity(2.0, "ml")),),
    )
    return DoseReport(
        sop_instance_uid="1.2.3",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        kind=CT,
        source=SOURCE_RDSR,
        study=Study("1.2.3.4", "ACC1", "ISS", datetime(2024, 1, 2, 10, 0), "CT chest", PersonName("Kim"), "Hospital 中心", ("CT", "PT"), concept("P5-08000", "CT", "SRT")),
        patient=Patient("P1", "ISS", PersonName("Doe", ("Jane",)), date(1950, 5, 6), "F", "073Y", Quantity(70.5, "kg"), Quantity(1.68, "m")),
        device=Device("SIEMENS", "Flash", "123", "CT1", "1.2.3.5", "VA48", "ct-1"),
        modality="CT",
        template="10011",
        procedure_reported=concept("77477000", "Computed Tomography X-Ray", "SCT"),
        intent=concept("261004008", "Diagnostic Intent", "SCT"),
        started=datetime(2024, 1, 2, 10, 11),
        ended=datetime(2024, 1, 2, 10, 30),
        content_datetime=datetime(2024, 1, 2, 10, 31, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        scope=concept("113014", "Study"),
        source_of_dose_information=(concept("113856", "Automated Data Collection"),),
        persons=(person,),
        accumulated=(AccumulatedDose(concept("113620", "Plane A"), "RP def", (Measurement(concept("113722", "DAP Total"), Quantity(160.0, "mGy.cm2")),)),),
        events=(event, IrradiationEvent(uid="1.2.3.2", kind="CT")),
        administrations=(admin,),
        measurements=(Measurement(concept("113813", "DLP Total"), Quantity(724.52, "mGy.cm")),),
        source_instances=("1.2.3", "1.2.4"),
        quirks=("unit-spelling:mGycm",),
    )


def test_round_trip_through_json_text_is_exact():
    report = full_report()
    text = json.dumps(dump(report), ensure_ascii=False)
    back = load(json.loads(text))
    assert back == report
    # Concept equality ignores the meaning: compare the full forms as well
    assert dump(back) == dump(report)
    assert back.events[0].measurements[0].quantity.value == 0.1 + 0.2
    assert back.events[0].started.utcoffset() == timedelta(hours=2)
    assert back.content_datetime.utcoffset() == timedelta(hours=-5, minutes=-30)
    assert back.administrations[0].started.tzinfo is None
    assert back.patient.birth_date == date(1950, 5, 6) and type(back.patient.birth_date) is date
    assert back.events[0].codes[0][1].meaning == "Tungsten"
    assert back.events[0].dose_check.ctdivol_alert_configured is False
    assert back.events[0].dose_check.dlp_notification_configured is None
    assert isinstance(back.events, tuple) and isinstance(back.events[0].codes[0], tuple)


def test_defaults_are_left_out():
    bare = DoseReport("1.2", "1.2.840.10008.5.1.4.1.1.88.67", CT, SOURCE_RDSR, Study("1.2.3"))
    data = dump(bare)["report"]
    assert set(data) == {"sop_instance_uid", "sop_class_uid", "kind", "source", "study"}
    assert load(dump(bare)) == bare


def test_a_foreign_dict_is_refused():
    with pytest.raises(ValueError):
        load({"sop_instance_uid": "1"})
    data = dump(full_report())
    data["report"]["unexpected"] = 1
    with pytest.raises(ValueError, match="unexpected"):
        load(data)
    with pytest.raises(ValueError, match="version"):
        load({**dump(full_report()), "version": 99})


@pytest.mark.corpus
def test_every_corpus_report_round_trips(corpus):
    """Whatever the SR and image parsers produce for the vendor corpus survives the JSON form."""
    from dacs_fhir.errors import NotADoseObject
    from dacs_fhir.mappers.dicom import parse

    count = 0
    for path in sorted((corpus / "rdsr").glob("*.dcm")) + sorted((corpus / "images").glob("*.dcm")):
        try:
            report = parse(path)
        except NotADoseObject:
            continue
        data = json.loads(json.dumps(dump(report)))
        assert load(data) == report, path.name
        assert dump(load(data)) == data, path.name
        count += 1
    assert count >= 20
