"""Combining the dose reports of one study (cumulative RDSRs, separate irradiations, image headers)."""
from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dacs_fhir import codes as c
from dacs_fhir.aggregate import group_uid, merge_reports, totals_from_events
from dacs_fhir.domain import (
    CT,
    PROJECTION,
    SOURCE_IMAGE,
    SOURCE_RDSR,
    AccumulatedDose,
    Concept,
    Device,
    DoseReport,
    IrradiationEvent,
    Measurement,
    Quantity,
    Study,
)
from dacs_fhir.mappers.dicom_image import parse_image

STUDY = "1.2.3.4.5"
SCANNER = Device(manufacturer="SIEMENS", model="SOMATOM Confidence", observer_uid="1.2.3.99")
LEFT = Concept("SCT", c.LEFT_BREAST[1], "Left breast")
RIGHT = Concept("SCT", c.RIGHT_BREAST[1], "Right breast")


def m(code: str, v: float, unit: str, qualifier: Concept | None = None) -> Measurement:
    return Measurement(Concept("DCM", code, code), Quantity(v, unit), qualifier)


def ct_event(uid: str, dlp: float, minute: int) -> IrradiationEvent:
    return IrradiationEvent(uid=uid, kind=CT, started=datetime(2024, 1, 2, 10, minute), measurements=(m(c.MEAN_CTDIVOL, 1.0, "mGy"), m(c.DLP, dlp, "mGy.cm")))


def ct_rdsr(sop: str, events: list[IrradiationEvent], total: float, minute: int, study: str = STUDY, device: Device = SCANNER) -> DoseReport:
    return DoseReport(
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67",
        kind=CT,
        source=SOURCE_RDSR,
        study=Study(instance_uid=study, modalities=("CT",)),
        device=device,
        content_datetime=datetime(2024, 1, 2, 10, minute),
        accumulated=(AccumulatedDose(measurements=(m(c.TOTAL_NUMBER_OF_EVENTS, len(events), "{events}"), m(c.CT_DLP_TOTAL, total, "mGy.cm"))),),
        events=tuple(events),
        source_instances=(sop,),
    )


E1, E2, E3 = ct_event("1.1", 7.46, 1), ct_event("1.2", 69.81, 5), ct_event("1.3", 158.82, 9)
# the Siemens SOMATOM Confidence pattern: each report repeats every earlier event
R1 = ct_rdsr("9.1", [E1], 7.46, 2)
R2 = ct_rdsr("9.2", [E1, E2], 77.27, 6)
R3 = ct_rdsr("9.3", [E1, E2, E3], 236.09, 10)


@pytest.mark.parametrize("order", list(itertools.permutations([R1, R2, R3])))
def test_cumulative_reports_dedupe_events_and_keep_the_latest_totals_in_any_order(order):
    (merged,) = merge_reports(list(order))
    assert [e.uid for e in merged.events] == ["1.1", "1.2", "1.3"]
    assert merged.total(c.CT_DLP_TOTAL).value == 236.09
    assert merged.sop_instance_uid == "9.3"
    assert merged.source_instances == ("9.1", "9.2", "9.3")


def test_remerging_an_older_report_changes_nothing():
    (merged,) = merge_reports([R1, R2, R3])
    assert merge_reports([merged, R1]) == [merged]
    assert merge_reports([R2, merged]) == [merged]
    assert merge_reports([merged]) == [merged]


def test_reports_of_separate_irradiations_sum_their_totals():
    a = ct_rdsr("8.1", [E1], 7.46, 2)
    b = ct_rdsr("8.2", [E3], 158.82, 10)
    (merged,) = merge_reports([b, a])
    assert merged.total(c.CT_DLP_TOTAL).value == 166.28
    assert merged.total(c.TOTAL_NUMBER_OF_EVENTS).value == 2
    assert merged.sop_instance_uid in ("8.1", "8.2")
    assert merge_reports([a, b]) == [merged]


def test_partly_overlapping_reports_without_a_superset_are_recomputed_from_events():
    a = ct_rdsr("7.1", [E1, E2], 77.27, 6)
    b = ct_rdsr("7.2", [E2, E3], 228.63, 10)
    (merged,) = merge_reports([a, b])
    assert len(merged.events) == 3
    assert merged.total(c.CT_DLP_TOTAL).value == 236.09


def test_groups_by_study_kind_and_device():
    other_study = ct_rdsr("6.1", [ct_event("2.1", 10, 1)], 10, 1, study="1.2.3.4.6")
    other_device = ct_rdsr("6.2", [ct_event("3.1", 20, 1)], 20, 1, device=Device(manufacturer="GE", model="Revolution"))
    merged = merge_reports([R1, other_study, other_device, R3])
    assert len(merged) == 3
    by_key = {(r.study.instance_uid, r.device.model): r for r in merged}
    assert by_key[(STUDY, "SOMATOM Confidence")].total(c.CT_DLP_TOTAL).value == 236.09
    assert by_key[("1.2.3.4.6", "SOMATOM Confidence")].total(c.CT_DLP_TOTAL).value == 10
    assert by_key[(STUDY, "Revolution")].total(c.CT_DLP_TOTAL).value == 20


def test_disjoint_mammography_reports_sum_agd_per_breast():
    def mg(sop: str, uid: str, agd: float, side: Concept) -> DoseReport:
        event = IrradiationEvent(uid=uid, kind=PROJECTION, laterality=side, measurements=(m(c.AGD, agd, "mGy"),))
        acc = AccumulatedDose(plane=Concept("DCM", c.SINGLE_PLANE), measurements=(m(c.ACCUMULATED_AGD, agd, "mGy", side),))
        return DoseReport(sop, "1.2.840.10008.5.1.4.1.1.88.67", PROJECTION, SOURCE_RDSR, Study(STUDY), device=SCANNER, accumulated=(acc,), events=(event,))

    (merged,) = merge_reports([mg("5.1", "e1", 1.3, LEFT), mg("5.2", "e2", 1.28, RIGHT), mg("5.3", "e3", 1.2, LEFT)])
    assert merged.total(c.ACCUMULATED_AGD, qualifier=LEFT.code).value == 2.5
    assert merged.total(c.ACCUMULATED_AGD, qualifier=RIGHT.code).value == 1.28


def dx_image(study: str, dap: str, when: str, station: str = "ROOM1") -> DoseReport:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = "1.2.840.10008.5.1.4.1.1.1.1", generate_uid(), study
    ds.Modality, ds.Manufacturer, ds.StationName = "DX", "ACME", station
    ds.ImageAndFluoroscopyAreaDoseProduct = dap
    ds.AcquisitionDateTime = when
    return parse_image(ds)


def test_images_of_one_study_become_one_report_with_recomputed_totals_in_any_order():
    study = generate_uid()
    images = [dx_image(study, "0.41", "20240102101500"), dx_image(study, "1.0", "20240102101000"), dx_image(study, "0.59", "20240102102000")]
    results = {tuple(merge_reports(list(p))) for p in itertools.permutations(images)}
    assert len(results) == 1
    (merged,) = results.pop()
    assert merged.source == SOURCE_IMAGE
    assert merged.total(c.DAP_TOTAL).value == 200.0  # (0.41 + 1.0 + 0.59) dGy.cm2
    assert merged.total(c.TOTAL_NUMBER_OF_FRAMES).value == 3
    assert [e.started.minute for e in merged.events] == [10, 15, 20]
    assert merged.started == datetime(2024, 1, 2, 10, 10)
    assert set(merged.source_instances) == {r.sop_instance_uid for r in images}
    # the combined report keeps one identity whichever images have arrived
    assert merged.sop_instance_uid == group_uid((study, PROJECTION, images[0].device.key))
    assert merge_reports(images[:1])[0].sop_instance_uid == merged.sop_instance_uid
    assert merge_reports([merged, images[1]]) == [merged]


def test_an_rdsr_of_the_study_is_authoritative_over_image_headers():
    study = generate_uid()
    image = dx_image(study, "0.41", "20240102101500", station="")
    event = IrradiationEvent(uid="4.1", kind=PROJECTION, measurements=(m(c.DAP, 41.0, "mGy.cm2"),))
    acc = AccumulatedDose(plane=Concept("DCM", c.SINGLE_PLANE), measurements=(m(c.DAP_TOTAL, 41.0, "mGy.cm2"),))
    rdsr = DoseReport("4.9", "1.2.840.10008.5.1.4.1.1.88.67", PROJECTION, SOURCE_RDSR, Study(study), device=image.device, accumulated=(acc,), events=(event,))
    (merged,) = merge_reports([image, rdsr])
    assert [e.uid for e in merged.events] == ["4.1"]
    assert merged.total(c.DAP_TOTAL).value == 41.0
    assert merged.sop_instance_uid == "4.9"
    assert image.sop_instance_uid in merged.source_instances


def test_totals_are_never_partial():
    with_dap = IrradiationEvent(uid="a", kind=PROJECTION, measurements=(m(c.DAP, 10.0, "mGy.cm2"),))
    without = IrradiationEvent(uid="b", kind=PROJECTION)
    (acc,) = totals_from_events(PROJECTION, [with_dap, without])
    assert acc.get(c.DAP_TOTAL) is None
    assert acc.get(c.TOTAL_NUMBER_OF_FRAMES).value == 2


@pytest.mark.corpus
def test_siemens_cumulative_rdsrs_of_the_corpus(corpus):
    """The three SOMATOM Confidence RDSRs: after all three, 3 events and 236.09 mGy.cm (MANIFEST.md)."""
    from dacs_fhir.mappers.dicom import parse

    files = [corpus / "rdsr" / f"ct-siemens-somatom-confidence-cumulative-{n}of3.dcm" for n in (1, 2, 3)]
    reports = [parse(f) for f in files]
    for order in itertools.permutations(reports):
        (merged,) = merge_reports(list(order))
        assert len(merged.events) == 3
        assert merged.total(c.CT_DLP_TOTAL).value == pytest.approx(236.09)
        assert merge_reports([merged, reports[0]])[0].total(c.CT_DLP_TOTAL).value == pytest.approx(236.09)


def test_a_single_image_keeps_its_device_reported_total():
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.7", generate_uid(), generate_uid(), "CT"
    item = Dataset()
    item.CTDIvol = 7.2
    item.AcquisitionType = "SPIRAL"
    item.private_block(0x00E1, "ELSCINT1", create=True).add_new(0x21, "DS", "196.01")
    from pydicom.sequence import Sequence

    ds.ExposureDoseSequence = Sequence([item])
    ds.private_block(0x00E1, "ELSCINT1", create=True).add_new(0x21, "DS", "196.0")  # the device rounds its total
    image = parse_image(ds)
    (merged,) = merge_reports([image])
    assert merged.total(c.CT_DLP_TOTAL).value == 196.0
    assert merged.sop_instance_uid == group_uid((image.study.instance_uid, CT, image.device.key))
    assert merged.source_instances == (image.sop_instance_uid,)


def test_a_total_missing_from_one_of_separate_reports_is_not_summed():
    def dx(sop: str, uid: str, dap: float, dose_rp: float | None) -> DoseReport:
        items = (m(c.DAP_TOTAL, dap, "mGy.cm2"),) + ((m(c.DOSE_RP_TOTAL, dose_rp, "mGy"),) if dose_rp is not None else ())
        acc = AccumulatedDose(plane=Concept("DCM", c.SINGLE_PLANE), measurements=items)
        event = IrradiationEvent(uid=uid, kind=PROJECTION, measurements=(m(c.DAP, dap, "mGy.cm2"),))
        return DoseReport(sop, "1.2.840.10008.5.1.4.1.1.88.67", PROJECTION, SOURCE_RDSR, Study(STUDY), device=SCANNER, accumulated=(acc,), events=(event,))

    (merged,) = merge_reports([dx("3.1", "x1", 12.5, 0.3), dx("3.2", "x2", 7.5, None)])
    assert merged.total(c.DAP_TOTAL).value == 20.0
    assert merged.total(c.DOSE_RP_TOTAL) is None


def test_fluoroscopy_time_of_a_procedure_step_is_not_added_up_across_its_images():
    study = generate_uid()

    def xa(dap: str, fluoro_seconds: int) -> DoseReport:
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = "1.2.840.10008.5.1.4.1.1.12.1", generate_uid(), study
        ds.Modality, ds.RadiationSetting = "XA", "GR"
        ds.ImageAndFluoroscopyAreaDoseProduct, ds.TotalTimeOfFluoroscopy = dap, fluoro_seconds
        return parse_image(ds)

    (merged,) = merge_reports([xa("1.0", 30), xa("2.0", 75), xa("0.5", 60)])
    assert merged.total(c.TOTAL_FLUORO_TIME).value == 75.0  # cumulative per procedure step: the latest value
    assert merged.total(c.DAP_TOTAL).value == 350.0


def test_ct_images_join_the_rdsr_of_the_same_scanner_and_study():
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.2", generate_uid(), STUDY, "CT"
    ds.Manufacturer, ds.ManufacturerModelName, ds.CTDIvol = "Siemens", "SOMATOM  Confidence", 8.13
    image = parse_image(ds)
    assert image.device.key != SCANNER.key
    (merged,) = merge_reports([image, R3])
    assert merged.sop_instance_uid == "9.3" and len(merged.events) == 3
    assert merged.total(c.CT_DLP_TOTAL).value == 236.09
    assert image.sop_instance_uid in merged.source_instances
    other = Dataset()
    other.update(ds)
    other.SOPInstanceUID, other.ManufacturerModelName = generate_uid(), "Revolution"
    assert len(merge_reports([parse_image(other), R3])) == 2
