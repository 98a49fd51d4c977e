"""Legacy dose extraction from image headers (PS3.3 C.8.7.8, C.8.15.2, C.4.16, C.8.4.10), on headers built here."""
from __future__ import annotations

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from dacs_fhir import codes as c
from dacs_fhir.aggregate import merge_reports
from dacs_fhir.domain import CT, PROJECTION, RADIOPHARMACEUTICAL, SOURCE_IMAGE
from dacs_fhir.errors import NotADoseObject
from dacs_fhir.mappers import image_quirks
from dacs_fhir.mappers.dicom_image import parse_image

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"
XA_IMAGE = "1.2.840.10008.5.1.4.1.1.12.1"
PT_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
RAW_DATA = "1.2.840.10008.5.1.4.1.1.66"


def header(sop_class: str, modality: str, study: str | None = None, **attrs) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Model 1"
    ds.PatientID = "P1"
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def value(container, code: str, qualifier: str | None = None) -> float | None:
    q = container.get(code, qualifier=qualifier)
    return None if q is None else q.value


# ---------------------------------------------------------------- CT


def test_ct_image_with_ctdivol_only_gives_one_event_and_no_invented_dlp():
    ds = header(CT_IMAGE, "CT", CTDIvol=12.5, KVP="100", XRayTubeCurrent="250", ExposureTime="1200", AcquisitionType="SPIRAL", SpiralPitchFactor=0.9)
    r = parse_image(ds)
    assert (r.kind, r.source, r.modality) == (CT, SOURCE_IMAGE, "CT")
    assert len(r.events) == 1
    e = r.events[0]
    assert value(e, c.MEAN_CTDIVOL) == 12.5 and e.get(c.MEAN_CTDIVOL).unit == "mGy"
    assert e.get(c.DLP) is None
    assert value(e, c.EXPOSURE_TIME) == 1.2  # ms -> s
    assert value(e, c.PITCH_FACTOR) == 0.9
    assert e.event_type.code == "116152004"
    assert value(e.sources[0], c.KVP) == 100 and value(e.sources[0], c.TUBE_CURRENT) == 250
    assert r.total(c.TOTAL_NUMBER_OF_EVENTS).value == 1
    assert r.total(c.CT_DLP_TOTAL) is None
    assert r.source_instances == (ds.SOPInstanceUID,)


def test_ct_slices_of_one_acquisition_are_one_irradiation_event():
    study, series = generate_uid(), generate_uid()
    slices = []
    for _ in range(3):
        ds = header(CT_IMAGE, "CT", study, CTDIvol=8.0, AcquisitionNumber="2")
        ds.SeriesInstanceUID = series
        slices.append(parse_image(ds))
    assert len({r.events[0].uid for r in slices}) == 1
    merged = merge_reports(slices)
    assert len(merged) == 1 and len(merged[0].events) == 1
    assert len(merged[0].source_instances) == 3


def test_irradiation_event_uid_of_the_header_is_used():
    uid = generate_uid()
    r = parse_image(header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="1.5", IrradiationEventUID=uid))
    assert r.events[0].uid == uid


def test_derived_event_uid_is_deterministic_and_a_valid_uid():
    ds = header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="1.5")
    a, b = parse_image(ds).events[0].uid, parse_image(ds).events[0].uid
    assert a == b and a.startswith("2.25.") and len(a) <= 64 and a[5:].isdigit()


def _philips_dose_info(dlps=("0", "196.01", "248.585973"), total="444.595973", creator="ELSCINT1") -> Dataset:
    ds = header(SC_IMAGE, "CT", Manufacturer="Philips", ManufacturerModelName="Brilliance 16P", ImageType=["DERIVED", "SECONDARY", "DOSE_INFO"])
    items = []
    for n, (dlp, ctdi, kind) in enumerate(zip(dlps, (0.0, 7.2, 11.3), ("CONSTANT_ANGLE", "SPIRAL", "SPIRAL"))):
        item = Dataset()
        item.AcquisitionType = kind
        item.CTDIvol = ctdi
        item.KVP = "120"
        item.XRayTubeCurrentInuA = "165044.374"
        item.ScanLength = str(100 + n)
        item.SeriesDescription = f"S{n}"
        item.private_block(0x00E1, creator, create=True).add_new(0x21, "DS", dlp)
        items.append(item)
    ds.ExposureDoseSequence = Sequence(items)
    ds.private_block(0x00E1, creator, create=True).add_new(0x21, "DS", total)
    return ds


def test_philips_dose_info_private_dlp_per_event_and_vendor_total():
    r = parse_image(_philips_dose_info(total="444.6"))
    assert r.kind == CT
    assert [value(e, c.DLP) for e in r.events] == [0.0, 196.01, 248.585973]
    assert [value(e, c.MEAN_CTDIVOL) for e in r.events] == [0.0, 7.2, 11.3]
    assert [e.event_type.code for e in r.events] == ["113805", "116152004", "116152004"]
    assert [e.protocol for e in r.events] == ["S0", "S1", "S2"]
    assert value(r.events[1].sources[0], c.TUBE_CURRENT) == 165.044374  # uA -> mA
    assert r.total(c.CT_DLP_TOTAL).value == 444.6  # the device's own total
    assert r.total(c.TOTAL_NUMBER_OF_EVENTS).value == 3
    assert image_quirks.PHILIPS_PRIVATE_DLP.name in r.quirks
    assert len({e.uid for e in r.events}) == 3


def test_private_dlp_of_another_creator_is_not_read():
    r = parse_image(_philips_dose_info(creator="OTHERVENDOR"))
    assert all(e.get(c.DLP) is None for e in r.events)
    assert r.total(c.CT_DLP_TOTAL) is None
    assert not r.quirks


def test_enhanced_ct_shared_functional_group_ctdivol():
    exposure = Dataset()
    exposure.CTDIvol = 21.0
    exposure.ExposureTimeInms = 500.0
    details, acquisition = Dataset(), Dataset()
    details.KVP = "100"
    acquisition.AcquisitionType = "SPIRAL"
    shared = Dataset()
    shared.CTExposureSequence = Sequence([exposure])
    shared.CTXRayDetailsSequence = Sequence([details])
    shared.CTAcquisitionTypeSequence = Sequence([acquisition])
    ds = header("1.2.840.10008.5.1.4.1.1.2.1", "CT")
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    r = parse_image(ds)
    assert value(r.events[0], c.MEAN_CTDIVOL) == 21.0 and value(r.events[0], c.EXPOSURE_TIME) == 0.5
    assert value(r.events[0], c.KVP) == 100 and r.events[0].event_type.code == "116152004"


# ---------------------------------------------------------------- projection


def test_dx_dap_in_dgy_cm2_and_technique_factors():
    ds = header(
        DX_IMAGE, "DX",
        ImageAndFluoroscopyAreaDoseProduct="0.41", KVP="69.639999", Exposure="1", ExposureInuAs="1040", ExposureTime="6",
        XRayTubeCurrent="189", ExposureIndex="51.745061", TargetExposureIndex="438.469173", DeviationIndex="-9.3",
        DistanceSourceToDetector="1150", EntranceDoseInmGy="0.35", AcquisitionDate="20240102", AcquisitionTime="101733",
        ProtocolName="ABD AP", ImageLaterality="R",
    )
    r = parse_image(ds)
    assert r.kind == PROJECTION and r.procedure_reported.code == c.PROJECTION_PROCEDURE
    e = r.events[0]
    assert value(e, c.DAP) == 41.0 and e.get(c.DAP).unit == "mGy.cm2"  # 0.41 dGy.cm2
    assert value(e, c.EXPOSURE) == 1.04 and e.get(c.EXPOSURE).unit == "mA.s"  # uAs preferred over rounded mAs
    assert value(e, c.EXPOSURE_TIME_PROJECTION) == 0.006
    assert value(e, c.KVP) == 69.639999 and value(e, c.TUBE_CURRENT) == 189
    assert (value(e, c.EXPOSURE_INDEX), value(e, c.TARGET_EXPOSURE_INDEX), value(e, c.DEVIATION_INDEX)) == (51.745061, 438.469173, -9.3)
    assert value(e, c.DISTANCE_SOURCE_TO_DETECTOR) == 1150
    assert value(e, c.ENTRANCE_EXPOSURE_AT_RP) == 0.35
    assert e.laterality.code == "24028007" and e.protocol == "ABD AP"
    assert e.started.isoformat() == "2024-01-02T10:17:33"
    assert r.total(c.DAP_TOTAL).value == 41.0 and r.total(c.FLUORO_DAP_TOTAL) is None
    assert r.total(c.TOTAL_NUMBER_OF_FRAMES).value == 1
    assert r.source_of_dose_information[0].code == c.COPIED_FROM_IMAGE_ATTRIBUTES


def test_kodak_dr7500_sid_in_decimetres_is_a_named_quirk_of_that_model_only():
    kodak = parse_image(header(DX_IMAGE, "CR", Manufacturer="KODAK", ManufacturerModelName="DR 7500", ImageAndFluoroscopyAreaDoseProduct="11.013", DistanceSourceToDetector="11.5"))
    other = parse_image(header(DX_IMAGE, "CR", ImageAndFluoroscopyAreaDoseProduct="11.013", DistanceSourceToDetector="11.5"))
    fixed_firmware = parse_image(header(DX_IMAGE, "CR", Manufacturer="KODAK", ManufacturerModelName="DR 7500", ImageAndFluoroscopyAreaDoseProduct="1", DistanceSourceToDetector="1150"))
    assert value(kodak.events[0], c.DISTANCE_SOURCE_TO_DETECTOR) == 1150
    assert image_quirks.KODAK_SID_DECIMETRES.name in kodak.quirks
    assert value(other.events[0], c.DISTANCE_SOURCE_TO_DETECTOR) == 11.5 and not other.quirks
    assert value(fixed_firmware.events[0], c.DISTANCE_SOURCE_TO_DETECTOR) == 1150 and not fixed_firmware.quirks


def test_filters_with_swapped_thickness_and_several_materials():
    one = parse_image(header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="1", FilterType="FLAT", FilterMaterial="ALUMINUM", FilterThicknessMinimum="1.06", FilterThicknessMaximum="0.94"))
    f = one.events[0].filters[0]
    assert (f.material.code, f.type.code, f.thickness_min.value, f.thickness_max.value) == ("12503006", "113653", 0.94, 1.06)
    assert image_quirks.FILTER_THICKNESS_SWAPPED.name in one.quirks
    two = parse_image(header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="1", FilterMaterial=["COPPER", "ALUMINUM"], FilterThicknessMinimum=["0.1", "1.0"], FilterThicknessMaximum=["0.1", "1.0"]))
    assert [(x.material.code, x.thickness_max.value) for x in two.events[0].filters] == [("66925006", 0.1), ("12503006", 1.0)]


def test_xa_fluoroscopy_setting_and_total_time_of_fluoroscopy():
    ds = header(XA_IMAGE, "XA", ImageAndFluoroscopyAreaDoseProduct="2.5", RadiationSetting="SC", ExposureTime="4000", TotalTimeOfFluoroscopy=95, PositionerPrimaryAngle="-30", PositionerSecondaryAngle="20")
    r = parse_image(ds)
    e = r.events[0]
    assert e.event_type.code == c.FLUOROSCOPY[1]
    assert (value(e, c.POSITIONER_PRIMARY_ANGLE), value(e, c.POSITIONER_SECONDARY_ANGLE)) == (-30, 20)
    assert r.total(c.FLUORO_DAP_TOTAL).value == 250.0 and r.total(c.ACQUISITION_DAP_TOTAL).value == 0.0
    assert r.total(c.TOTAL_FLUORO_TIME).value == 4.0  # from the fluoroscopy event itself
    acq = parse_image(header(XA_IMAGE, "XA", ImageAndFluoroscopyAreaDoseProduct="2.5", RadiationSetting="GR", NumberOfFrames="30", TotalTimeOfFluoroscopy=95))
    assert acq.total(c.TOTAL_FLUORO_TIME).value == 95.0  # the procedure step's value
    assert acq.total(c.TOTAL_NUMBER_OF_FRAMES).value == 30


# ---------------------------------------------------------------- mammography


def test_mg_organ_dose_in_dgy_is_agd_per_breast():
    ds = header(MG_IMAGE, "MG", OrganDose="0.01373", OrganExposed="BREAST", EntranceDoseInmGy="5.071", EntranceDose=0, ImageLaterality="L", BodyPartThickness="53", CompressionForce="50", AnodeTargetMaterial="RHODIUM", FilterMaterial="RHODIUM", KVP="29")
    ds["EntranceDose"].VR = "US"
    r = parse_image(ds)
    e = r.events[0]
    assert r.procedure_reported.code == "71651007"
    assert value(e, c.AGD) == 1.373
    assert value(e, c.ENTRANCE_EXPOSURE_AT_RP) == 5.071
    assert value(e, c.COMPRESSION_THICKNESS) == 53 and value(e, c.COMPRESSION_FORCE) == 50
    assert e.laterality.code == c.LEFT_BREAST[1]
    assert dict((k.code, v.code) for k, v in e.codes)[c.ANODE_TARGET_MATERIAL] == "59801003"
    assert r.total(c.ACCUMULATED_AGD, qualifier=c.LEFT_BREAST[1]).value == 1.373
    assert r.total(c.ACCUMULATED_AGD, qualifier=c.RIGHT_BREAST[1]) is None
    assert r.total(c.DAP_TOTAL) is None


def test_secondary_capture_with_modality_mg_is_a_mammography_image():
    r = parse_image(header(SC_IMAGE, "MG", OrganDose="0.0026", Laterality="R"))
    assert r.kind == PROJECTION and r.procedure_reported.code == "71651007"
    assert r.total(c.ACCUMULATED_AGD, qualifier=c.RIGHT_BREAST[1]).value == 0.26


def test_two_views_of_both_breasts_accumulate_per_laterality():
    study = generate_uid()
    views = [parse_image(header(MG_IMAGE, "MG", study, OrganDose=d, ImageLaterality=s)) for d, s in (("0.013", "L"), ("0.012", "L"), ("0.014", "R"))]
    merged = merge_reports(views)[0]
    assert merged.total(c.ACCUMULATED_AGD, qualifier=c.LEFT_BREAST[1]).value == 2.5
    assert merged.total(c.ACCUMULATED_AGD, qualifier=c.RIGHT_BREAST[1]).value == 1.4


# ---------------------------------------------------------------- radiopharmaceutical


def _pet(study: str) -> Dataset:
    info = Dataset()
    info.Radiopharmaceutical = "FDG -- fluorodeoxyglucose"
    info.RadionuclideTotalDose = "221596288"
    info.RadionuclideHalfLife = "6586.2"
    info.RadiopharmaceuticalStartDateTime = "20240102101000"
    info.RadionuclideCodeSequence = Sequence([code_item("C-111A1", "SRT", "^18^Fluorine")])
    info.RadiopharmaceuticalCodeSequence = Sequence([code_item("C-B1031", "SRT", "Fluorodeoxyglucose F^18^")])
    return header(PT_IMAGE, "PT", study, RadiopharmaceuticalInformationSequence=Sequence([info]))


def test_pet_radionuclide_total_dose_in_bq_becomes_administered_activity_in_mbq():
    r = parse_image(_pet(generate_uid()))
    assert r.kind == RADIOPHARMACEUTICAL and not r.events
    (a,) = r.administrations
    assert (a.activity.value, a.activity.unit) == (221.596288, "MBq")
    assert (a.half_life.value, a.half_life.unit) == (6586.2, "s")
    assert a.agent.code == "C-B1031" and a.radionuclide.code == "C-111A1" and a.agent_text.startswith("FDG")
    assert a.started.isoformat() == "2024-01-02T10:10:00"


def test_pet_images_of_one_study_describe_one_administration():
    study = generate_uid()
    merged = merge_reports([parse_image(_pet(study)), parse_image(_pet(study))])
    assert len(merged) == 1 and len(merged[0].administrations) == 1


# ---------------------------------------------------------------- rejection


def test_image_without_dose_attributes_is_not_a_dose_object():
    with pytest.raises(NotADoseObject, match="carries no dose attributes"):
        parse_image(header(CT_IMAGE, "CT", KVP="120", XRayTubeCurrent="200"))


def test_zero_entrance_dose_alone_is_not_a_dose():
    ds = header(DX_IMAGE, "DX", EntranceDose=0)
    ds["EntranceDose"].VR = "US"
    with pytest.raises(NotADoseObject):
        parse_image(ds)


def test_non_image_sop_class_is_not_a_dose_object_even_with_dose_tags():
    with pytest.raises(NotADoseObject, match="Raw Data Storage"):
        parse_image(header(RAW_DATA, "CT", CTDIvol=5.0))


def test_dispatch_from_bytes_through_the_dicom_entry_point():
    import io

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from dacs_fhir.mappers.dicom import parse

    ds = header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="0.5")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    r = parse(buf.getvalue())
    assert r.total(c.DAP_TOTAL).value == 50.0


def test_nm_image_total_dose_is_in_mbq_and_implausible_units_are_repaired():
    nm = _pet(generate_uid())
    nm.SOPClassUID, nm.Modality = "1.2.840.10008.5.1.4.1.1.20", "NM"
    nm.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "740"
    r = parse_image(nm)
    assert r.administrations[0].activity.value == 740.0 and not r.quirks  # NM Isotope module: MBq
    nm.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "740000000"
    assert parse_image(nm).administrations[0].activity.value == 740.0
    assert image_quirks.ACTIVITY_UNIT_MISMATCH.name in parse_image(nm).quirks
    pet = _pet(generate_uid())
    pet.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "350"  # a PET header coded in MBq
    assert parse_image(pet).administrations[0].activity.value == 350.0


def test_siemens_filter_coded_in_filter_type():
    r = parse_image(header(DX_IMAGE, "DX", Manufacturer="SIEMENS", ImageAndFluoroscopyAreaDoseProduct="1", FilterType="CU_0.2_MM"))
    (f,) = r.events[0].filters
    assert (f.material.code, f.thickness_min.value, f.thickness_max.value) == ("66925006", 0.2, 0.2)
    assert image_quirks.SIEMENS_FILTER_TYPE.name in r.quirks
    ds = header(DX_IMAGE, "DX", ImageAndFluoroscopyAreaDoseProduct="1")
    # comma-separated lists break the CS/DS value rules: read as they were written
    for tag, written in ((0x00187050, b"COPPER,ALUMINUM "), (0x00187052, b"0.1,1.0 "), (0x00187054, b"0.1,1.0 ")):
        ds[tag] = RawDataElement(Tag(tag), None, len(written), written, 0, True, True)
    comma = parse_image(ds)
    assert [x.material.code for x in comma.events[0].filters] == ["66925006", "12503006"]
