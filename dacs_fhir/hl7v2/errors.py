"""Errors of the HL7 v2 inbound path; :mod:`.ack` turns each into an ACK (HL7 v2.5.1 §2.9, table 0357)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import RejectedInput

# HL7 table 0357 Message error condition codes
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY = "205"
APPLICATION_INTERNAL_ERROR = "207"

CODE_TEXT = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    UNKNOWN_KEY_IDENTIFIER: "Unknown key identifier",
    DUPLICATE_KEY: "Duplicate key identifier",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True)
class Location:
    """HL7 v2.5.1 ERR-2 Error Location (ERL): segment, its sequence, field, repetition, component."""

    segment: str
    sequence: int = 1
    field: int = 0
    repetition: int = 0
    component: int = 0


class Hl7Error(RejectedInput):
    """An inbound message that cannot be applied as sent; ``ack_code`` is the MSA-1 reply."""

    ack_code = "AE"

    def __init__(self, reason: str, code: str = REQUIRED_FIELD_MISSING, location: Location | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.location = location


class MessageRejected(Hl7Error):
    """Unparseable, or a message type / event / version we do not support: AR."""

    ack_code = "AR"

    def __init__(self, reason: str, code: str = UNSUPPORTED_MESSAGE_TYPE, location: Location | None = None):
        super().__init__(reason, code, location)


class ContentError(Hl7Error):
    """A supported message whose content is wrong (missing key, bad date …): AE."""

    ack_code = "AE"


class SenderRefused(MessageRejected):
    """A message from a sender that the allow-list does not name (address, MSH-3 / MSH-4): AR, kept raw.

    HL7 v2.5.1 table 0357 has no code for an unknown or unauthorised sender: 207 (application internal
    error, "a catchall for internal errors not explicitly covered by other codes") is used, with AR
    (§2.9.2: resending it unchanged cannot help) and the reason in ERR-8. 203 (unsupported version id)
    would tell the sender that its MSH-12 is wrong."""

    def __init__(self, reason: str = "sending application / facility not allowed"):
        super().__init__(reason, APPLICATION_INTERNAL_ERROR, Location("MSH", 1, 3, 1, 1))
