"""HL7 v2.5.1 mappings (pure: no store, no network).

Outbound: ``oru`` builds the ORU^R01 dose summary from a DoseReport. Inbound: ``adt`` and
``orders`` map a decoded ADT / ORM / OMI message (``dacs_fhir.hl7v2.message.Inbound``) to a FHIR
transaction Bundle, with the data type maps of ``datatypes``; the HL7 receiver applies it.
"""
from .oru import to_oru

__all__ = ["to_oru"]
