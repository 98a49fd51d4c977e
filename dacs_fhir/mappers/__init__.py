"""Pure mappers: DICOM → domain model (DoseReport) → FHIR Bundle / HL7 v2 ORU / PDF.

No database, no network. Only this package knows DICOM templates.
"""
