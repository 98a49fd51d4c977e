"""HL7 v2 inbound path: decode, acknowledge, apply through the pipeline.

``message`` decodes what real feeds send; the mapping to FHIR transaction Bundles is pure and
lives in ``dacs_fhir.mappers.hl7v2`` (``adt``, ``orders``); ``receiver`` keeps the raw message in
the inbox and applies the mapped Bundle through ``Pipeline.transaction``; ``ack`` is the one place
that turns the outcome into AA / AE / AR; ``senders`` is the sender allow-list.
"""
from .ack import acknowledge, build_ack
from .errors import ContentError, Hl7Error, MessageRejected
from .message import Inbound, decode

__all__ = ["ContentError", "Hl7Error", "Inbound", "MessageRejected", "acknowledge", "build_ack", "decode"]
