"""Errors that become protocol replies (DICOM status, HL7 ACK, OperationOutcome) in one place each."""
from __future__ import annotations


class DacsError(Exception):
    """Base class; ``str(err)`` is a one-line reason safe to show and log (no PHI)."""


class RejectedInput(DacsError):
    """An inbound object that cannot be mapped (a client error: do not retry unchanged)."""


class NotADoseObject(RejectedInput):
    """A well-formed DICOM object that carries no radiation dose information."""


class CorruptObject(RejectedInput):
    """Bytes that are not a readable DICOM object, or a dose object too broken to map."""


class MappingError(RejectedInput):
    """A dose object whose content breaks the template rules (wrong units, missing UIDs …)."""


class TransientError(DacsError):
    """The store is unavailable: the task is retried and the inbox item stays pending."""


class ConfigurationError(DacsError, ValueError):
    """A setting that cannot work (``dacs-fhir`` exits with its one-line message)."""
