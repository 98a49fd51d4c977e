"""The built-in sample dose SRs (demo data): valid dose reports, fixed UIDs for the demo set."""
from dacs_fhir.domain import CT, PROJECTION, RADIOPHARMACEUTICAL
from dacs_fhir.mappers.dicom import parse
from dacs_fhir.samples import build_ct_sr, sample_objects


def test_demo_samples_are_dose_reports_with_fixed_uids():
    first, second = sample_objects(), sample_objects()
    assert [name for name, _ in first] == [name for name, _ in second]
    assert all(a == b for (_, a), (_, b) in zip(first, second))  # same bytes: reloading finds duplicates
    reports = [parse(data) for _, data in first]
    assert [r.kind for r in reports] == [CT, PROJECTION, PROJECTION, RADIOPHARMACEUTICAL]
    assert len({r.study.instance_uid for r in reports}) == 4
    assert len(reports[0].events) == 4 and len(reports[1].events) == 12


def test_built_samples_get_fresh_uids_outside_the_demo_set():
    assert build_ct_sr().SOPInstanceUID != build_ct_sr().SOPInstanceUID
