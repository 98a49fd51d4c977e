"""dacs-fhir: a Dose Archiving and Communication System speaking DICOM, HL7 v2 and FHIR R4."""

__version__ = "0.1.0"
