"""HL7 v2 inbound path: decode (python-hl7), map ADT / ORM / OMI to FHIR, apply, acknowledge.

``message`` decodes what real feeds send; ``adt`` and ``orders`` map to FHIR
transaction Bundles (pure); ``receiver`` applies them through the store after
keeping the raw message in the inbox; ``ack`` is the one place that turns the
outcome into AA / AE / AR.
"""
from .ack import acknowledge, build_ack
from .errors import ContentError, Hl7Error, MessageRejected
from .message import Inbound, decode
from .receiver import Receiver

__all__ = ["ContentError", "Hl7Error", "Inbound", "MessageRejected", "Receiver", "acknowledge", "build_ack", "decode"]
