"""Store: dose analytics tables and kept domain reports, filled in the write transaction (issue 3)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pytest
from sqlalchemy import select

from dacs_fhir import domain as d
from dacs_fhir.mappers import report_json
from dacs_fhir.store import Store
from dacs_fhir.store.models import dose_study, dose_summary, dose_total, irradiation_event

STUDY = "1.2.826.0.1.3680043.10.99.1"


def m(code: str, value: float, unit: str) -> d.Measurement:
    return d.Measurement(d.Concept("DCM", code), d.Quantity(value, unit))


def ct_report(sop: str, dlps: list[float], serial: str = "SN1") -> d.DoseReport:
    events = tuple(d.IrradiationEvent(uid=f"{sop}.{i}", kind="CT", protocol="Head", started=datetime(2024, 5, 2, 9, i),
                                      target_region=d.Concept("SCT", "69536005"),
                                      measurements=(m("113830", dlp / 20, "mGy"), m("113838", dlp, "mGy.cm")),
                                      sources=(d.XRaySource("A", (m("113733", 120, "kV"),)),))
                   for i, dlp in enumerate(dlps))
    return d.DoseReport(
        sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=d.CT, source=d.SOURCE_RDSR,
        study=d.Study(STUDY, accession_number="ACC1", started=datetime(2024, 5, 2, 9, 0, tzinfo=timezone.utc),
                      modalities=("CT",)),
        patient=d.Patient(id="PID-1", issuer="HOSP"), device=d.Device(manufacturer="ACME", model="X", serial_number=serial),
        modality="CT", events=events,
        accumulated=(d.AccumulatedDose(measurements=(m("113813", sum(dlps), "mGy.cm"), m("113812", len(dlps), "{events}"))),))


def record(tx, report: d.DoseReport, kept: Optional[d.DoseReport] = None, **written) -> None:
    """``tx.record_dose_report`` as the pipeline calls it: ``kept`` (default ``report``) with its JSON form."""
    tx.record_dose_report(report, kept=kept, kept_json=report_json.dump(kept or report), **written)


def rows(store, table, *where):
    with store.engine.connect() as conn:
        return conn.execute(select(table).where(*where)).mappings().all()


def test_analytics_rows_follow_the_report(store):
    report = ct_report("1.2.3.100", [400.0, 212.5])
    summary = {"resourceType": "Observation", "id": "sum-1", "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]}}
    events = [{"resourceType": "Observation", "id": f"ev-{i}", "identifier": [{"value": f"urn:oid:1.2.3.100.{i}"}]}
              for i in range(2)] + [{"resourceType": "Patient", "id": "pat-1"}]
    with store.transaction() as tx:
        record(tx, report, resources=[summary, *events])
    study = rows(store, dose_study)[0]
    assert study["study_uid"] == STUDY and study["patient_ref"] == "Patient/pat-1"
    assert study["patient_key"] and "PID-1" not in study["patient_key"]  # pseudonymous
    assert rows(store, dose_summary)[0]["summary_ref"] == "Observation/sum-1"
    totals = {r["code"]: r["value"] for r in rows(store, dose_total)}
    assert totals["113813"] == pytest.approx(612.5) and totals["113812"] == 2
    ev = sorted(rows(store, irradiation_event), key=lambda r: r["event_uid"])
    assert [(e["dlp"], e["ctdivol"], e["kvp"], e["observation_ref"]) for e in ev] == [
        (400.0, 20.0, 120.0, "Observation/ev-0"), (212.5, 10.625, 120.0, "Observation/ev-1")]


def test_a_new_report_of_the_study_replaces_its_rows(store):
    with store.transaction() as tx:
        record(tx, ct_report("1.2.3.100", [400.0]))
    with store.transaction() as tx:
        record(tx, ct_report("1.2.3.101", [400.0, 100.0]))
    assert len(rows(store, irradiation_event)) == 2
    assert [r["value"] for r in rows(store, dose_total, dose_total.c.code == "113813")] == [500.0]
    with store.transaction() as tx:  # another device in the same study keeps its own rows
        record(tx, ct_report("1.2.3.102", [50.0], serial="SN2"))
    assert len(rows(store, dose_summary)) == 2


def test_kept_reports_round_trip(store):
    first, second = ct_report("1.2.3.100", [400.0]), ct_report("1.2.3.101", [10.0])
    with store.transaction() as tx:
        record(tx, first)
    with store.transaction() as tx:  # merged report, source report, references to read back
        record(tx, first, second, references=["Patient/none"])
    with store.transaction() as tx:
        kept = tx.dose_reports_for_study(STUDY)
        assert tx.dose_reports_for_study("9.9.9") == []
    assert [report_json.load(k) for k in kept] == [first, second]


def test_written_references_are_read_back_from_the_store(store):
    """Resources given as ``Type/id`` references: the summary and event Observations are found by content."""
    report = ct_report("1.2.3.200", [75.0])
    with store.transaction() as tx:
        summary = tx.create({"resourceType": "Observation", "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]}}).resource
        event = tx.create({"resourceType": "Observation", "status": "final", "code": {"text": "event"},
                           "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.3.200.0"}]}).resource
        record(tx, report, report, references=[f"Observation/{summary['id']}", f"Observation/{event['id']}"])
    assert rows(store, dose_summary)[0]["summary_ref"] == f"Observation/{summary['id']}"
    assert rows(store, irradiation_event)[0]["observation_ref"] == f"Observation/{event['id']}"
