"""What each kind of destination receives for a dose result: HL7 v2.5.1 ORU^R01 or a FHIR transaction Bundle."""
from __future__ import annotations

import json

from .destinations import HL7_V2, Destination


def payload_for(dest: Destination, report, corrected: bool = False) -> bytes:
    """The bytes ``dest`` receives for ``report``."""
    if dest.content_type == HL7_V2:
        from ..mappers.hl7v2 import to_oru

        return to_oru(report, corrected=corrected).encode("utf-8")
    from ..mappers.fhir import to_bundle

    return json.dumps(to_bundle(report, conditional="update"), ensure_ascii=False).encode("utf-8")
