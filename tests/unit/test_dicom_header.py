"""Header attributes read from raw bytes (dicom_header.text) give what pydicom's conversion gives."""
from __future__ import annotations

import io
import warnings

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from dacs_fhir.mappers.dicom import read_dataset
from dacs_fhir.mappers.dicom_header import converted_text, text

CASES = [("InstitutionName", b" Lead "), ("InstitutionName", b"Trail\x00"), ("InstitutionName", b" A \\ B "),
         ("InstitutionName", b"x\\\\y"), ("InstitutionName", b""), ("InstitutionName", b"\\"),
         ("InstitutionName", "Universit\u00e4t".encode("latin-1")), ("Modality", b"CT\\SR"), ("Modality", b"CT\x00"),
         ("StudyInstanceUID", b"1.2.3\x00"), ("PatientAge", b"045Y"), ("StudyDate", b"20240101 "),
         ("StudyTime", b"101010.5"), ("AccessionNumber", b"  "), ("PatientName", b"Doe^John"),
         ("SoftwareVersions", b"V1\\V2 ")]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("keyword, raw", CASES)
def test_raw_text_is_what_pydicom_converts(syntax, keyword, raw):
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    tag = tag_for_keyword(keyword)
    ds.add(DataElement(tag, dictionary_VR(tag), raw + (b" " if len(raw) % 2 else b"")))
    out = io.BytesIO()
    with warnings.catch_warnings():  # pydicom warns when writing the malformed values some cases need
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=True)
    fast, converted = read_dataset(out.getvalue()), read_dataset(out.getvalue())
    assert text(fast, keyword) == converted_text(converted.get(keyword))
    assert text(fast, "Manufacturer") == ""  # absent

