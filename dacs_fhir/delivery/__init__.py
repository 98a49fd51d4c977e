"""Outbound delivery of dose summaries: durable per-destination queues, sent in order by Celery tasks.

``enqueue_report`` builds, for each configured destination (``settings.destinations``),
the message it speaks (HL7 v2.5.1 ORU^R01 for ``mllp://``, a FHIR transaction
Bundle for ``fhir+http(s)://``), appends it to that destination's queue and makes
sure the queue is being sent. The queue keeps the built message: what was
acknowledged is exactly what was queued.
"""
from __future__ import annotations

import json
from typing import Callable, Iterable, Optional

from .destinations import HL7_V2, DeliveryError, Destination, parse
from .outbox import PARKED, PENDING, SENT, Outbox
from .pump import drain, kick, stop_local_pumps

__all__ = ["DeliveryError", "Destination", "Outbox", "PARKED", "PENDING", "SENT", "drain", "enqueue_report", "kick", "parse", "payload_for", "resume", "stop_local_pumps"]


def payload_for(dest: Destination, report, corrected: bool = False) -> bytes:
    """The bytes ``dest`` receives for ``report``."""
    if dest.content_type == HL7_V2:
        from ..mappers.hl7v2 import to_oru

        return to_oru(report, corrected=corrected).encode("utf-8")
    from ..mappers.fhir import to_bundle

    return json.dumps(to_bundle(report, conditional="update"), ensure_ascii=False).encode("utf-8")


def enqueue_report(settings, report, corrected: bool = False, key: Optional[str] = None,
                   destinations: Optional[Iterable[str]] = None, outbox: Optional[Outbox] = None,
                   schedule: Optional[Callable[[str], None]] = None) -> dict[str, Optional[int]]:
    """Queue ``report`` for every destination; ``key`` (e.g. report id + version) makes it idempotent;
    ``schedule``: how a queue is sent from a worker (the task layer's, with a broker)."""
    outbox = outbox or Outbox.for_settings(settings)
    queued: dict[str, Optional[int]] = {}
    for url in destinations if destinations is not None else settings.destinations:
        dest = parse(url)
        queued[url] = outbox.enqueue(url, payload_for(dest, report, corrected), dest.content_type, key)
        kick(settings, url, outbox, schedule)
    return queued


def resume(settings, outbox: Optional[Outbox] = None, schedule: Optional[Callable[[str], None]] = None) -> list[str]:
    """Start sending every queue that has pending messages (at startup, after a crash)."""
    outbox = outbox or Outbox.for_settings(settings)
    urls = sorted(set(settings.destinations) | set(outbox.destinations()))
    for url in urls:
        kick(settings, url, outbox, schedule)
    return urls
