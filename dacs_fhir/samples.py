"""Sample dose SRs built in code with pydicom (PS3.16 TID 10001 / 10011 / 10021).

Used by ``dacs-fhir demo`` (sample data on a machine without the vendor corpus),
the tests and the benchmarks.

``build_ct_sr(events=N)``, ``build_projection_sr(events=N)``, ``build_rp_sr()`` return
pydicom Datasets; ``encode(ds)`` gives the Part 10 bytes. Keyword options switch on
the vendor quirks the parser must repair (unit spellings, missing template id …).
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Iterable, Optional

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

XRAY_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
RP_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.68"
ENHANCED_SR = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def code(value: str, scheme: str = "DCM", meaning: str = "") -> Dataset:
    c = Dataset()
    c.CodeValue = value
    c.CodingSchemeDesignator = scheme
    c.CodeMeaning = meaning or value
    return c


def _item(rel: str, vt: str, name: Dataset) -> Dataset:
    it = Dataset()
    it.RelationshipType = rel
    it.ValueType = vt
    it.ConceptNameCodeSequence = Sequence([name])
    return it


def _with(it: Dataset, children: Iterable[Dataset]) -> Dataset:
    children = list(children)
    if children:
        it.ContentSequence = Sequence(children)
    return it


def container(name: Dataset, children: Iterable[Dataset], rel: str = "CONTAINS", template: Optional[str] = None) -> Dataset:
    it = _item(rel, "CONTAINER", name)
    it.ContinuityOfContent = "SEPARATE"
    if template:
        t = Dataset()
        t.MappingResource = "DCMR"
        t.TemplateIdentifier = template
        it.ContentTemplateSequence = Sequence([t])
    return _with(it, children)


def num(name: Dataset, value: Optional[str], unit: str, rel: str = "CONTAINS", children=(), qualifier: Optional[Dataset] = None) -> Dataset:
    it = _item(rel, "NUM", name)
    if value is not None:
        mv = Dataset()
        mv.NumericValue = value
        mv.MeasurementUnitsCodeSequence = Sequence([code(unit, "UCUM", unit)])
        it.MeasuredValueSequence = Sequence([mv])
    else:
        it.MeasuredValueSequence = Sequence([])
    if qualifier is not None:
        it.NumericValueQualifierCodeSequence = Sequence([qualifier])
    return _with(it, children)


def coded(name: Dataset, value: Dataset, rel: str = "CONTAINS", children=()) -> Dataset:
    it = _item(rel, "CODE", name)
    it.ConceptCodeSequence = Sequence([value])
    return _with(it, children)


def text(name: Dataset, value: str, rel: str = "CONTAINS", children=()) -> Dataset:
    it = _item(rel, "TEXT", name)
    it.TextValue = value
    return _with(it, children)


def uidref(name: Dataset, value: str, rel: str = "CONTAINS") -> Dataset:
    it = _item(rel, "UIDREF", name)
    it.UID = value
    return it


def datetime_(name: Dataset, value: str, rel: str = "CONTAINS") -> Dataset:
    it = _item(rel, "DATETIME", name)
    it.DateTime = value
    return it


def pname(name: Dataset, value: str, rel: str = "CONTAINS", children=()) -> Dataset:
    it = _item(rel, "PNAME", name)
    it.PersonName = value
    return _with(it, children)


def D(value: str, meaning: str = "") -> Dataset:
    return code(value, "DCM", meaning)


def S(value: str, meaning: str = "", scheme: str = "SRT") -> Dataset:
    return code(value, scheme, meaning)


_seed: Optional[str] = None  # set by fixed_uids(): UIDs derived from it instead of random ones


@contextmanager
def fixed_uids(seed: str):
    """Build samples with UIDs derived from ``seed`` (the same seed gives the same objects)."""
    global _seed
    previous, _seed = _seed, seed
    try:
        yield
    finally:
        _seed = previous


def _new_uid(role: str) -> str:
    return generate_uid(entropy_srcs=[_seed, role]) if _seed else generate_uid()


def renew_uids(ds: Dataset) -> Dataset:
    """``ds`` made a new study in place (benchmarks and load tests): fresh study, series and SOP instance
    UIDs, and a fresh Irradiation Event UID (DCM 113769, TID 10003 / 10013) in every event, so copies
    of one vendor object never share an event."""
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    _renew_event_uids(ds)
    return ds


def _renew_event_uids(ds: Dataset) -> None:
    for item in ds.get("ContentSequence", []):
        name = item.get("ConceptNameCodeSequence")
        if item.get("ValueType") == "UIDREF" and name and name[0].get("CodeValue") == "113769":
            item.UID = generate_uid()
        _renew_event_uids(item)


def _header(sop_class: str, charset: Optional[str] = "ISO_IR 100") -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _new_uid("sop")
    ds.StudyInstanceUID = _new_uid("study")
    ds.SeriesInstanceUID = _new_uid("series")
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.ContentDate = "20240102"
    ds.ContentTime = "103000"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "SR"
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = "Model X"
    ds.DeviceSerialNumber = "SN-1"
    ds.StationName = "ROOM1"
    ds.SoftwareVersions = "1.0"
    ds.InstitutionName = "Test Hospital"
    ds.StudyDescription = "Test study"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.PatientName = "Test^Patient"
    ds.PatientID = "PID1"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.PatientAge = "064Y"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    return ds


def _root(ds: Dataset, root: Dataset, template: Optional[str], children: list[Dataset]) -> Dataset:
    ds.ConceptNameCodeSequence = Sequence([root])
    if template:
        t = Dataset()
        t.MappingResource = "DCMR"
        t.TemplateIdentifier = template
        ds.ContentTemplateSequence = Sequence([t])
    ds.ContentSequence = Sequence(children)
    return ds


def _observer_context(ds: Dataset) -> list[Dataset]:
    return [
        coded(D("121005", "Observer Type"), D("121007", "Device"), rel="HAS OBS CONTEXT"),
        uidref(D("121012", "Device Observer UID"), "1.2.3.4.5.6", rel="HAS OBS CONTEXT"),
        text(D("121013", "Device Observer Name"), "ROOM1-OBS", rel="HAS OBS CONTEXT"),
        text(D("121014", "Device Observer Manufacturer"), "ACME", rel="HAS OBS CONTEXT"),
        text(D("121015", "Device Observer Model Name"), "Model X", rel="HAS OBS CONTEXT"),
        text(D("121016", "Device Observer Serial Number"), "OBS-SN", rel="HAS OBS CONTEXT"),
        datetime_(D("113809", "Start of X-Ray Irradiation"), "20240102101600", rel="HAS OBS CONTEXT"),
        datetime_(D("113810", "End of X-Ray Irradiation"), "20240102102900", rel="HAS OBS CONTEXT"),
        coded(D("113705", "Scope of Accumulation"), D("113014", "Study"), rel="HAS OBS CONTEXT",
              children=[uidref(D("110180", "Study Instance UID"), ds.StudyInstanceUID, rel="HAS PROPERTIES")]),
    ]


def _procedure(value: Dataset, intent: str = "R-408C3") -> Dataset:
    return coded(D("121058", "Procedure reported"), value, rel="HAS CONCEPT MOD",
                 children=[coded(S("G-C0E8", "Has Intent"), S(intent, "Diagnostic Intent"), rel="HAS CONCEPT MOD")])


def _uid(sop: str, n: int) -> str:
    return f"{sop[:48]}.{n + 1}"


def ct_event(i: int, uid: Optional[str], ctdivol: str = "10.5", dlp: str = "420.25", dlp_unit: str = "mGy.cm",
             dose_check: bool = False, sources: int = 1) -> Dataset:
    """TID 10013 CT Acquisition."""
    params = [
        num(D("113824", "Exposure Time"), "5.5", "s"),
        num(D("113825", "Scanning Length"), "400", "mm"),
        num(D("113826", "Nominal Single Collimation Width"), "0.625", "mm"),
        num(D("113827", "Nominal Total Collimation Width"), "40", "mm"),
        num(D("113828", "Pitch Factor"), "0.98", "{ratio}"),
        num(D("113823", "Number of X-Ray Sources"), str(sources), "{X-Ray sources}"),
    ]
    for s in range(sources):
        params.append(container(D("113831", "CT X-Ray Source Parameters"), [
            text(D("113832", "Identification of the X-Ray Source"), "AB"[s]),
            num(D("113733", "KVP"), str(120 - 20 * s), "kV"),
            num(D("113833", "Maximum X-Ray Tube Current"), "300", "mA"),
            num(D("113734", "X-Ray Tube Current"), "250", "mA"),
            num(D("113834", "Exposure Time per Rotation"), "0.5", "s"),
        ]))
    dose = [
        num(D("113830", "Mean CTDIvol"), ctdivol, "mGy"),
        coded(D("113835", "CTDIw Phantom Type"), D("113691", "IEC Body Dosimetry Phantom")),
        num(D("113838", "DLP"), dlp, dlp_unit),
    ]
    if dose_check:
        dose.append(container(D("113900", "Dose Check Alert Details"), [
            coded(D("113901", "DLP Alert Value Configured"), S("R-0038D", "Yes")),
            coded(D("113902", "CTDIvol Alert Value Configured"), S("373067005", "No", "SCT")),
            num(D("113903", "DLP Alert Value"), "1000", "mGy.cm"),
            num(D("113905", "Accumulated DLP Forward Estimate"), "1200", "mGy.cm"),
            text(D("113907", "Reason for Proceeding"), "clinical need"),
            pname(D("113870", "Person Name"), "Auth^Doc", children=[
                coded(D("113875", "Person Role in Procedure"), D("113850", "Irradiation Authorizing"), rel="HAS PROPERTIES")]),
        ]))
        dose.append(container(D("113908", "Dose Check Notification Details"), [
            coded(D("113909", "DLP Notification Value Configured"), S("R-00339", "No")),
            coded(D("113910", "CTDIvol Notification Value Configured"), S("R-0038D", "Yes")),
            num(D("113912", "CTDIvol Notification Value"), "50", "mGy"),
        ]))
    children = [
        text(D("125203", "Acquisition Protocol"), f"Protocol {i}"),
        coded(D("123014", "Target Region"), S("T-D4000", "Abdomen")),
        coded(D("113820", "CT Acquisition Type"), S("P5-08001", "Spiral Acquisition")),
        coded(S("G-C32C", "Procedure Context"), S("P5-0808E", "CT without contrast")),
    ]
    if uid:
        children.append(uidref(D("113769", "Irradiation Event UID"), uid))
    children += [
        container(D("113822", "CT Acquisition Parameters"), params),
        container(D("113829", "CT Dose"), dose),
        text(D("121106", "Comment"), f"event {i}"),
    ]
    return container(D("113819", "CT Acquisition"), children, template="10013")


def build_ct_sr(events: int = 2, *, template: bool = True, sop_class: str = XRAY_DOSE_SR, dlp_unit: str = "mGy.cm",
                with_uids: bool = True, dose_check: bool = False, sources: int = 1) -> Dataset:
    """A TID 10011 CT Radiation Dose report with ``events`` CT Acquisitions (CTDIvol 10.5 + i, DLP 100 * (i + 1))."""
    ds = _header(sop_class)
    accumulated = container(D("113811", "CT Accumulated Dose Data"), [
        num(D("113812", "Total Number of Irradiation Events"), str(events), "{events}"),
        num(D("113813", "CT Dose Length Product Total"), f"{sum(100 * (i + 1) for i in range(events)):.2f}", dlp_unit),
    ], template="10012")
    children = [_procedure(S("P5-08000", "Computed Tomography X-Ray"))] + _observer_context(ds) + [accumulated]
    for i in range(events):
        children.append(ct_event(i, _uid(ds.SOPInstanceUID, i) if with_uids else None, ctdivol=f"{10.5 + i}",
                                 dlp=f"{100 * (i + 1)}", dlp_unit=dlp_unit, dose_check=dose_check, sources=sources))
    children.append(coded(D("113854", "Source of Dose Information"), D("113856", "Automated Data Collection")))
    return _root(ds, D("113701", "X-Ray Radiation Dose Report"), "10011" if template else None, children)


def projection_event(i: int, uid: Optional[str], plane: str = "113622", fluoro: bool = True, dap: str = "1.5e-05",
                     dap_unit: str = "Gy.m2", rp: str = "0.0021", rp_unit: str = "Gy", extra=()) -> Dataset:
    """TID 10003 Irradiation Event X-Ray Data."""
    children = [
        coded(D("113764", "Acquisition Plane"), D(plane), rel="HAS CONCEPT MOD"),
        datetime_(D("111526", "DateTime Started"), f"20240102{10 + i // 3600:02d}{(i // 60) % 60:02d}{i % 60:02d}"),
        coded(D("113721", "Irradiation Event Type"),
              S("P5-06000", "Fluoroscopy") if fluoro else D("113611", "Stationary Acquisition")),
        text(D("125203", "Acquisition Protocol"), "Fluoro Low" if fluoro else "Acq 2fps"),
        coded(D("123014", "Target Region"), S("T-D3000", "Chest")),
        text(D("113780", "Reference Point Definition"), "15cm from Isocenter toward Source"),
    ]
    if uid:
        children.append(uidref(D("113769", "Irradiation Event UID"), uid))
    children += [
        num(D("122130", "Dose Area Product"), dap, dap_unit),
        num(D("113738", "Dose (RP)"), rp, rp_unit),
        num(D("112011", "Positioner Primary Angle"), f"{i % 90}", "deg"),
        num(D("112012", "Positioner Secondary Angle"), None, "deg", qualifier=D("114010", "Value unknown")),
        container(D("113771", "X-Ray Filters"), [
            coded(D("113772", "X-Ray Filter Type"), D("113650", "Strip filter")),
            coded(D("113757", "X-Ray Filter Material"), S("C-127F9", "Copper or Copper compound")),
            num(D("113758", "X-Ray Filter Thickness Minimum"), "0.3", "mm"),
            num(D("113773", "X-Ray Filter Thickness Maximum"), "0.3", "mm"),
        ]),
        coded(D("113732", "Fluoro Mode"), D("113631", "Pulsed")),
        num(D("113791", "Pulse Rate"), "7.5", "{pulse}/s"),
        num(D("113768", "Number of Pulses"), "45", "1"),
        num(D("113733", "KVP"), "72", "kV"),
        num(D("113734", "X-Ray Tube Current"), "12.5", "mA"),
        num(D("113824", "Exposure Time"), "600", "ms"),
        num(D("113736", "Exposure"), "7500", "uA.s"),
        num(D("113742", "Irradiation Duration"), "6", "s"),
        *extra,
    ]
    return container(D("113706", "Irradiation Event X-Ray Data"), children, template="10003")


def accumulated_projection(plane: str, events: int, dap_each: float = 1.5e-05, unit: str = "Gy.m2") -> Dataset:
    """TID 10002 Accumulated X-Ray Dose for one plane (TID 10004 items inline)."""
    return container(D("113702", "Accumulated X-Ray Dose Data"), [
        coded(D("113764", "Acquisition Plane"), D(plane), rel="HAS CONCEPT MOD"),
        num(D("113722", "Dose Area Product Total"), f"{dap_each * events:.6g}", unit),
        num(D("113725", "Dose (RP) Total"), f"{0.0021 * events:.6g}", "Gy"),
        num(D("113726", "Fluoro Dose Area Product Total"), f"{dap_each * events:.6g}", unit),
        num(D("113728", "Fluoro Dose (RP) Total"), f"{0.0021 * events:.6g}", "Gy"),
        num(D("113730", "Total Fluoro Time"), f"{6 * events}", "s"),
        num(D("113727", "Acquisition Dose Area Product Total"), "0", unit),
        num(D("113729", "Acquisition Dose (RP) Total"), "0", "Gy"),
        num(D("113855", "Total Acquisition Time"), "0", "s"),
        num(D("113731", "Total Number of Radiographic Frames"), "0", "1"),
        text(D("113780", "Reference Point Definition"), "15cm from Isocenter toward Source"),
    ], template="10002")


def build_projection_sr(events: int = 3, *, planes: tuple[str, ...] = ("113622",), template: bool = True,
                        sop_class: str = XRAY_DOSE_SR, dap_unit: str = "Gy.m2", with_uids: bool = True,
                        repeat_events: int = 0) -> Dataset:
    """A TID 10001 Projection X-Ray report: ``events`` fluoroscopy events split over ``planes``.

    ``repeat_events`` appends copies of the first events (a cumulative report that repeats them).
    """
    ds = _header(sop_class)
    scale = {"Gy.m2": 1.0, "Gym2": 1.0, "dGy.cm2": 1e5}.get(dap_unit, 1.0)
    children = [_procedure(D("113704", "Projection X-Ray"))] + _observer_context(ds)
    per_plane = {p: sum(1 for i in range(events) if planes[i % len(planes)] == p) for p in planes}
    for p in planes:
        children.append(accumulated_projection(p, per_plane[p], 1.5e-05 * scale, dap_unit))
    built = []
    for i in range(events):
        built.append(projection_event(i, _uid(ds.SOPInstanceUID, i) if with_uids else None, plane=planes[i % len(planes)],
                                      dap=f"{1.5e-05 * scale:.6g}", dap_unit=dap_unit))
    built += [projection_event(i, _uid(ds.SOPInstanceUID, i) if with_uids else None, plane=planes[i % len(planes)],
                               dap=f"{1.5e-05 * scale:.6g}", dap_unit=dap_unit) for i in range(repeat_events)]
    children += built
    children.append(coded(D("113854", "Source of Dose Information"), D("113856", "Automated Data Collection")))
    children.append(pname(D("113870", "Person Name"), "Auth^Anna", children=[
        coded(D("113875", "Person Role in Procedure"), D("113850", "Irradiation Authorizing"), rel="HAS PROPERTIES")]))
    return _root(ds, D("113701", "X-Ray Radiation Dose Report"), "10001" if template else None, children)


def build_mammo_sr(*, sop_class: str = XRAY_DOSE_SR) -> Dataset:
    """A TID 10001 mammography report: AGD per breast (TID 10005) and two events (left CC, right CC)."""
    ds = _header(sop_class)
    agd = lambda value, side, meaning: num(D("111637", "Accumulated Average Glandular Dose"), value, "mGy", children=[  # noqa: E731
        coded(S("G-C171", "Laterality"), S(side, meaning), rel="HAS CONCEPT MOD")])
    children = [_procedure(S("P5-40010", "Mammography"))] + _observer_context(ds) + [
        container(D("113702", "Accumulated X-Ray Dose Data"), [
            coded(D("113764", "Acquisition Plane"), D("113622", "Single Plane"), rel="HAS CONCEPT MOD"),
            agd("1.30", "T-04030", "Left breast"),
            agd("1.28", "T-04020", "Right breast"),
        ]),
    ]
    for i, (side, meaning, value) in enumerate((("G-A101", "Left", "1.30"), ("G-A100", "Right", "1.28"))):
        children.append(container(D("113706", "Irradiation Event X-Ray Data"), [
            coded(D("113764", "Acquisition Plane"), D("113622", "Single Plane"), rel="HAS CONCEPT MOD"),
            uidref(D("113769", "Irradiation Event UID"), _uid(ds.SOPInstanceUID, i)),
            coded(D("113721", "Irradiation Event Type"), D("113611", "Stationary Acquisition")),
            coded(D("123014", "Target Region"), S("T-04000", "Breast"), children=[
                coded(S("G-C171", "Laterality"), S(side, meaning), rel="HAS CONCEPT MOD")]),
            num(D("111631", "Average Glandular Dose"), value, "mGy"),
            num(D("111636", "Entrance Exposure at RP"), "3.6", "mGy"),
            num(D("113733", "KVP"), "28", "kV"),
            num(D("113736", "Exposure"), "90200", "uAs"),
        ]))
    return _root(ds, D("113701", "X-Ray Radiation Dose Report"), "10001", children)


def build_rp_sr(*, sop_class: str = RP_DOSE_SR, private_effective_dose: bool = True, scheme: str = "SRT") -> Dataset:
    """A TID 10021 Radiopharmaceutical report (FDG, 350 MBq, two organ doses, effective dose 6.65 mSv)."""
    ds = _header(sop_class)
    sn = lambda srt, sct: srt if scheme == "SRT" else sct  # noqa: E731
    effective = num(D("113839", "Effective Dose"), "6.65", "mSv", children=[
        text(D("121406", "Reference Authority"), "ICRP Publication 128", rel="HAS PROPERTIES")])
    organ = lambda site, site_meaning, value, lat=None: container(D("113517", "Organ Dose Information"), [  # noqa: E731
        coded(S(sn("G-C0E3", "363698007"), "Finding Site", scheme), S(site, site_meaning, scheme), rel="HAS CONCEPT MOD"),
        *([coded(S(sn("G-C171", "272741003"), "Laterality", scheme), S(lat, "Right and left", scheme), rel="HAS CONCEPT MOD")] if lat else []),
        num(D("113518", "Organ Dose"), value, "mGy", children=[
            text(D("121406", "Reference Authority"), "ICRP Publication 128", rel="HAS PROPERTIES")]),
    ])
    admin = container(D("113502", "Radiopharmaceutical Administration"), [
        coded(S(sn("F-61FDB", "349358000"), "Radiopharmaceutical agent", scheme), S(sn("C-B1031", "35321007"), "Fluorodeoxyglucose F^18^", scheme), children=[
            coded(S(sn("C-10072", "89457008"), "Radionuclide", scheme), S(sn("C-111A1", "77004003"), "^18^Fluorine", scheme), rel="HAS PROPERTIES"),
            num(S(sn("R-42806", "304283002"), "Radionuclide Half Life", scheme), "6586.2", "s", rel="HAS PROPERTIES"),
        ]),
        uidref(D("113503", "Radiopharmaceutical Administration Event UID"), _uid(ds.SOPInstanceUID, 8)),
        datetime_(D("123003", "Radiopharmaceutical Start DateTime"), "20240102093000"),
        datetime_(D("123004", "Radiopharmaceutical Stop DateTime"), "20240102093100"),
        num(D("113507", "Administered activity"), "350", "MBq"),
        organ(sn("T-B3000", "23451007"), "Adrenal gland", "4.1", sn("G-A102", "51440002")),
        organ(sn("T-74000", "89837001"), "Bladder", "45.5"),
        container(code("220001", "99SHS", "Effective Dose Information"), [effective]) if private_effective_dose else effective,
        coded(S(sn("G-C340", "410675002"), "Route of administration", scheme), S(sn("G-D101", "47625008"), "Intravenous route", scheme), children=[
            coded(S(sn("G-C581", "363698007"), "Site of", scheme), S(sn("G-D052", "64572001"), "Via vein", scheme), rel="HAS PROPERTIES")]),
        pname(D("113870", "Person Name"), "Nurse^Nina", rel="HAS OBS CONTEXT", children=[
            coded(D("113875", "Person Role in Procedure"), D("113851", "Irradiation Administering"), rel="HAS PROPERTIES")]),
    ], template="10022")
    patient = container(D("121118", "Patient Characteristics"), [
        num(D("121033", "Subject Age"), "64", "a"),
        coded(D("121032", "Subject Sex"), D("F", "Female")),
        num(code("8302-2", "LN", "Patient Height"), "1.65", "m"),
        num(code("29463-7", "LN", "Patient Weight"), "70", "kg"),
    ])
    children = [coded(S(sn("G-C2D0", "363589002"), "Associated Procedure", scheme), S("P5-0A00A", "PET study for localization of tumor"),
                      rel="HAS CONCEPT MOD", children=[
                          coded(S(sn("G-C0E8", "363703001"), "Has Intent", scheme), S("R-408C3", "Diagnostic Intent"), rel="HAS CONCEPT MOD")]),
                admin, patient]
    for k in ("PatientAge", "PatientSex"):
        delattr(ds, k)
    return _root(ds, D("113500", "Radiopharmaceutical Radiation Dose Report"), "10021", children)


def encode(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Part 10 bytes of a built dataset (Explicit VR Little Endian unless told)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def sample_objects() -> list[tuple[str, bytes]]:
    """Named Part 10 sample objects for the demo: a CT, a fluoroscopy, a mammography and an NM report.

    Their UIDs are fixed, so loading the samples again finds them as duplicates."""
    builders = [
        ("sample-ct-4-events.dcm", lambda: build_ct_sr(events=4)),
        ("sample-rf-12-events.dcm", lambda: build_projection_sr(events=12)),
        ("sample-mg.dcm", build_mammo_sr),
        ("sample-nm.dcm", build_rp_sr),
    ]
    out = []
    for name, build in builders:
        with fixed_uids(name):
            out.append((name, encode(build())))
    return out
