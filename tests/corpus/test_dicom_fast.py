"""The raw top-level reader gives the same data set as pydicom's full read, on every vendor file."""
from __future__ import annotations

import pydicom
import pytest

from dacs_fhir.mappers.dicom import read_dataset
from dacs_fhir.mappers.dicom_fast import fast_read


def _files(corpus):
    return sorted(p for sub in ("rdsr", "images") for p in (corpus / sub).glob("*") if p.is_file())


def test_same_data_set_as_pydicom(corpus):
    checked = undefined = 0
    for path in _files(corpus):
        data = path.read_bytes()
        try:
            ref = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            assert fast_read(data) is None or "SOPClassUID" in fast_read(data)
            continue
        fast = fast_read(data)
        if not ref.file_meta.TransferSyntaxUID.is_little_endian or ref.file_meta.TransferSyntaxUID.is_deflated:
            assert fast is None, path.name
            continue
        if fast is None:  # left to pydicom: e.g. UN of undefined length (implicit VR items, CP-246)
            assert b"UN\x00\x00\xff\xff\xff\xff" in data, path.name
            continue
        assert fast.to_json_dict() == ref.to_json_dict(), path.name
        checked += 1
        undefined += b"\xff\xff\xff\xff" in data
    assert checked >= 10 and undefined >= 1  # the corpus has sequences of undefined length


def test_undefined_length_sequences_are_kept_raw(corpus):
    """A sequence of undefined length is kept as bytes and decodes on access (the Content Sequence is
    also parsed by the SR tree reader while read)."""
    path = corpus / "rdsr" / "rf-canon-ultimax-i-mgy-dose-rp.dcm"
    data = path.read_bytes()
    ds = fast_read(data)
    raw = ds._dict[0x0040A730]
    assert isinstance(raw.value, bytes) and raw.VR == "SQ"
    assert len(ds.ContentSequence) == len(pydicom.dcmread(path).ContentSequence)


@pytest.mark.parametrize("cut", [140, 400, 2000, -9])
def test_cut_short_objects_fall_back_to_pydicom(corpus, cut):
    data = (corpus / "rdsr" / "rf-canon-ultimax-i-mgy-dose-rp.dcm").read_bytes()[:cut]
    assert fast_read(data) is None
    try:
        read_dataset(data)
    except Exception as exc:  # pydicom's own verdict, as a one-line CorruptObject
        assert type(exc).__name__ == "CorruptObject"


def test_content_parsed_while_read_maps_as_its_bytes_do(corpus, monkeypatch):
    """Every RDSR written with sequences and items of undefined length: the Content
    Sequence parsed in the read gives the report the parse of its kept bytes gives."""
    import io

    from dacs_fhir.mappers import dicom_fast, report_json
    from dacs_fhir.mappers.dicom import parse

    checked = 0
    for path in sorted((corpus / "rdsr").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        if not ds.file_meta.TransferSyntaxUID.is_little_endian or ds.file_meta.TransferSyntaxUID.is_deflated:
            continue
        for elem in ds.iterall():
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value:
                    item.is_undefined_length_sequence_item = True
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        data = out.getvalue()
        if not dicom_fast.parsed_sequences(fast_read(data)):
            continue
        once = report_json.dump(parse(data))
        with monkeypatch.context() as m:
            m.setattr(dicom_fast, "_content_items", lambda *args: None)  # skipped, parsed from its bytes later
            assert not dicom_fast.parsed_sequences(fast_read(data))
            assert report_json.dump(parse(data)) == once, path.name
        checked += 1
    assert checked >= 15
