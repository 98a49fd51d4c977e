"""Protocol listeners (DICOM SCP, MLLP, FHIR REST): keep the raw input, enqueue, acknowledge."""
