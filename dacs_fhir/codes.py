"""Coded concepts used across the product (DICOM PS3.16 CID/TID codes, LOINC, FHIR systems).

Only codes are identity; meanings are for display. SNOMED codes appear in dose
objects both as legacy SNOMED-RT ("SRT", e.g. ``R-0038D``) and as SNOMED CT
("SCT", e.g. ``373066001``); :data:`SRT_TO_SCT` lists the pairs that matter for
matching, from PS3.16 Annex O (SNOMED Concept ID to SNOMED ID mapping).
"""
from __future__ import annotations

# FHIR code systems
SYS_DCM = "http://dicom.nema.org/resources/ontology/DCM"
SYS_LOINC = "http://loinc.org"
SYS_SCT = "http://snomed.info/sct"
SYS_SRT = "http://snomed.info/srt"
SYS_UCUM = "http://unitsofmeasure.org"
SYS_DICOM_UID = "urn:dicom:uid"
SYS_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
SYS_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SYS_UCUM_ALIASES = {"UCUM": SYS_UCUM}

# DICOM coding scheme designator -> FHIR system
SCHEME_SYSTEMS = {
    "DCM": SYS_DCM,
    "LN": SYS_LOINC,
    "SCT": SYS_SCT,
    "SRT": SYS_SRT,
    "SNM3": "http://snomed.info/snm3",
    "UCUM": SYS_UCUM,
    "RADLEX": "http://radlex.org",
    "RADLEX (RID)": "http://radlex.org",
    "FMA": "http://purl.org/sig/ont/fma",
    "I10": "http://hl7.org/fhir/sid/icd-10",
}


def scheme_system(scheme: str) -> str:
    """FHIR system URI for a DICOM coding scheme designator (private schemes as urn:oid-less URNs)."""
    return SCHEME_SYSTEMS.get(scheme) or f"urn:dicom:coding-scheme:{scheme}"


# ---- SR document roots (CID 10000 / PS3.16 TID 10001, 10011, 10021)
XRAY_DOSE_REPORT = "113701"  # X-Ray Radiation Dose Report (TID 10001, 10011)
RP_DOSE_REPORT = "113500"  # Radiopharmaceutical Radiation Dose Report (TID 10021)
PATIENT_RADIATION_DOSE_REPORT = "128401"  # TID 10030 Patient Radiation Dose Report root

# ---- TID 10001 / 10011 header
PROCEDURE_REPORTED = "121058"
CT_PROCEDURE = ("P5-08000", "77477000")  # SRT / SCT Computed Tomography X-Ray
PROJECTION_PROCEDURE = "113704"  # DCM Projection X-Ray
MAMMOGRAPHY_PROCEDURE = ("P5-40010", "71651007")
HAS_INTENT = ("G-C0E8", "363703001")
START_OF_IRRADIATION = "113809"
END_OF_IRRADIATION = "113810"
SCOPE_OF_ACCUMULATION = "113705"
SOURCE_OF_DOSE_INFORMATION = "113854"
DEVICE_OBSERVER_UID = "121012"
DEVICE_OBSERVER_NAME = "121013"
DEVICE_OBSERVER_MANUFACTURER = "121014"
DEVICE_OBSERVER_MODEL = "121015"
DEVICE_OBSERVER_SERIAL = "121016"
STUDY_INSTANCE_UID = "110180"
PERSON_NAME = "113870"
PERSON_ROLE = "113875"
IRRADIATION_AUTHORIZING = "113850"
COMMENT = "121106"

# ---- containers
CT_ACCUMULATED = "113811"  # TID 10012
CT_ACQUISITION = "113819"  # TID 10013
CT_ACQUISITION_PARAMETERS = "113822"
CT_XRAY_SOURCE_PARAMETERS = "113831"
CT_DOSE = "113829"
DOSE_CHECK_ALERT = "113900"  # TID 10015
DOSE_CHECK_NOTIFICATION = "113908"
ACCUMULATED_XRAY_DOSE = "113702"  # TID 10002
ACCUMULATED_MAMMO = "113704"  # (not used as container code; see TID 10005)
IRRADIATION_EVENT_XRAY = "113706"  # TID 10003
XRAY_FILTERS = "113771"
RP_ADMINISTRATION = "113502"  # TID 10022
ORGAN_DOSE_INFORMATION = "113517"  # TID 10023

# ---- accumulated totals (TID 10002 / 10004 / 10005 / 10007 / 10012)
TOTAL_NUMBER_OF_EVENTS = "113812"
CT_DLP_TOTAL = "113813"
CT_EFFECTIVE_DOSE_TOTAL = "113814"
DAP_TOTAL = "113722"
DOSE_RP_TOTAL = "113725"
FLUORO_DAP_TOTAL = "113726"
ACQUISITION_DAP_TOTAL = "113727"
FLUORO_DOSE_RP_TOTAL = "113728"
ACQUISITION_DOSE_RP_TOTAL = "113729"
TOTAL_FLUORO_TIME = "113730"
TOTAL_NUMBER_OF_FRAMES = "113731"
TOTAL_ACQUISITION_TIME = "113855"
ACCUMULATED_AGD = "111637"
REFERENCE_POINT_DEFINITION = ("113780",)  # TEXT or CODE value type (TID 10002 / 10003)
ACQUISITION_PLANE = "113764"

# ---- irradiation event items
IRRADIATION_EVENT_UID = "113769"
DATETIME_STARTED = "111526"
IRRADIATION_EVENT_TYPE = "113721"
ACQUISITION_PROTOCOL = "125203"
TARGET_REGION = "123014"
LATERALITY = ("G-C171", "272741003")
CT_ACQUISITION_TYPE = "113820"
PROCEDURE_CONTEXT = ("G-C32C", "408730004")
MEAN_CTDIVOL = "113830"
DLP = "113838"
CTDIW_PHANTOM_TYPE = "113835"
SSDE = "113930"
DAP = "122130"
DOSE_RP = "113738"
ENTRANCE_EXPOSURE_AT_RP = "111636"
AGD = "111631"
KVP = "113733"
TUBE_CURRENT = "113734"
EXPOSURE_TIME = "113824"
EXPOSURE = "113736"
SCANNING_LENGTH = "113825"
PITCH_FACTOR = "113828"
FLUORO_MODE = "113732"
NUMBER_OF_PULSES = "113768"
POSITIONER_PRIMARY_ANGLE = "112011"
POSITIONER_SECONDARY_ANGLE = "112012"
FILTER_TYPE = "113772"
FILTER_MATERIAL = "113757"
FILTER_THICKNESS_MIN = "113758"
FILTER_THICKNESS_MAX = "113773"
IDENTIFICATION_OF_XRAY_SOURCE = "113832"
DLP_ALERT_CONFIGURED = "113901"
CTDIVOL_ALERT_CONFIGURED = "113902"
DLP_NOTIFICATION_CONFIGURED = "113909"
CTDIVOL_NOTIFICATION_CONFIGURED = "113910"
REASON_FOR_PROCEEDING = "113907"

# ---- radiopharmaceutical (TID 10021 / 10022 / 10023)
RP_AGENT = ("F-61FDB", "349358000")
RADIONUCLIDE = ("C-10072", "89457008")
HALF_LIFE = ("R-42806", "304283002")  # Radionuclide Half Life (SRT / SCT)
ADMINISTERED_ACTIVITY = "113507"
EFFECTIVE_DOSE = "113839"
ROUTE_OF_ADMINISTRATION = ("G-C340", "410675002")
SITE_OF = ("G-C581", "363698007")
RP_ADMIN_EVENT_UID = "113503"
RP_START_DATETIME = "123003"
RP_STOP_DATETIME = "123004"
ORGAN_DOSE = "113518"

# ---- boolean codes
YES = ("R-0038D", "373066001")
NO = ("R-00339", "373067005")

# ---- LOINC
LOINC_RADIATION_DOSE_SUMMARY = "73569-6"  # Radiation exposure and protection information [Description] Document Diagnostic imaging

# ---- SNOMED RT <-> CT pairs used for matching (PS3.16 Annex O)
SRT_TO_SCT = {
    "R-0038D": "373066001",  # Yes
    "R-00339": "373067005",  # No
    "P5-08000": "77477000",  # Computed Tomography X-Ray
    "P5-40010": "71651007",  # Mammography
    "G-C0E8": "363703001",  # Has Intent
    "G-C171": "272741003",  # Laterality
    "G-C32C": "408730004",  # Procedure Context
    "F-61FDB": "349358000",  # Radiopharmaceutical agent
    "C-10072": "89457008",  # Radionuclide
    "G-C340": "410675002",  # Route of administration
    "G-C581": "363698007",  # Finding site
    "P5-06000": "44491008",  # Fluoroscopy
    "P5-08001": "116152004",  # Spiral Acquisition
    "T-04020": "73056007",  # Right breast
    "T-04030": "80248007",  # Left breast
    "G-A101": "7771000",  # Left
    "G-A100": "24028007",  # Right
    "G-A102": "51440002",  # Right and left
    "R-42806": "304283002",  # Radionuclide half life
    "G-C0E3": "363698007",  # Finding site
}
SCT_TO_SRT = {v: k for k, v in SRT_TO_SCT.items()}


def same_snomed(scheme: str, code: str, codes: tuple[str, str]) -> bool:
    """True when ``scheme:code`` is either form (SRT, SCT) of the SNOMED pair ``codes``."""
    return scheme in ("SRT", "SCT", "SNM3") and code in codes


# ---- image-header extraction (PS3.16 TID 10003 / 10003A / 10003B / 10013 concepts)
EXPOSURE_TIME_PROJECTION = "113735"  # TID 10003A Exposure Time (CT uses 113824)
IRRADIATION_DURATION = "113742"
EXPOSURE_INDEX = "113845"  # TID 10003B
TARGET_EXPOSURE_INDEX = "113846"
DEVIATION_INDEX = "113847"
DISTANCE_SOURCE_TO_DETECTOR = "113750"
ANODE_TARGET_MATERIAL = "111632"
COMPRESSION_THICKNESS = "111633"
HALF_VALUE_LAYER = "111634"
COMPRESSION_FORCE = "111647"
NOMINAL_SINGLE_COLLIMATION = "113826"
NOMINAL_TOTAL_COLLIMATION = "113827"
NUMBER_OF_XRAY_SOURCES = "113823"
COPIED_FROM_IMAGE_ATTRIBUTES = "113866"  # CID 10021 Source of dose information
SINGLE_PLANE = "113622"  # CID 10003 Equipment Plane Identification
STATIONARY_ACQUISITION = "113611"  # CID 10002 Irradiation Event Type
FLUOROSCOPY = ("P5-06000", "44491008")
LEFT_BREAST = ("T-04030", "80248007")
RIGHT_BREAST = ("T-04020", "73056007")

# ---- DICOM defined terms of image headers -> coded concepts (scheme, code, meaning)
# (0018,9302) Acquisition Type -> CID 10013 CT Acquisition Type
CT_ACQUISITION_TYPE_TERMS = {
    "SPIRAL": ("SCT", "116152004", "Spiral Acquisition"),
    "SEQUENCED": ("DCM", "113804", "Sequenced Acquisition"),
    "CONSTANT_ANGLE": ("DCM", "113805", "Constant Angle Acquisition"),
    "STATIONARY": ("DCM", "113806", "Stationary Acquisition"),
    "FREE": ("DCM", "113807", "Free Acquisition"),
}
# (0018,7050) Filter Material / (0018,1191) Anode Target Material -> CID 10006 / CID 10016
MATERIAL_TERMS = {
    "ALUMINUM": ("SCT", "12503006", "Aluminum"),
    "ALUMINIUM": ("SCT", "12503006", "Aluminum"),
    "COPPER": ("SCT", "66925006", "Copper"),
    "MOLYBDENUM": ("SCT", "71128006", "Molybdenum"),
    "RHODIUM": ("SCT", "59801003", "Rhodium"),
    "SILVER": ("SCT", "41967008", "Silver"),
    "TUNGSTEN": ("SCT", "26194003", "Tungsten"),
    "LEAD": ("SCT", "88488004", "Lead"),
    "TIN": ("SCT", "12597001", "Tin"),
    "NIOBIUM": ("SCT", "767776000", "Niobium"),
    "TANTALUM": ("SCT", "45215009", "Tantalum"),
    "EUROPIUM": ("SCT", "767775001", "Europium"),
    "TITANIUM": ("SCT", "1166006", "Titanium"),
}
# (0018,1160) Filter Type -> CID 10007
FILTER_TYPE_TERMS = {
    "STRIP": ("DCM", "113650", "Strip filter"),
    "WEDGE": ("DCM", "113651", "Wedge filter"),
    "BUTTERFLY": ("DCM", "113652", "Butterfly filter"),
    "FLAT": ("DCM", "113653", "Flat filter"),
    "NONE": ("DCM", "111609", "No filter"),
}
