"""Outbound delivery of dose results: per-destination queues in the store's database, sent in order.

:func:`enqueue_in` queues a result for every configured destination (``settings.destinations``)
inside the caller's store transaction, the one that records the result: it is committed with it or
not at all. Each destination gets the message it speaks (HL7 v2.5.1 ORU^R01 for ``mllp://``, a
FHIR transaction Bundle for ``fhir+http(s)://``), built by the sender before the first attempt and
kept. After the commit, ``Pumps.kick`` wakes the destination's sender; that is only a wake-up, the
senders also find queued messages on their own.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Optional

from .destinations import DeliveryError, Destination, parse
from .outbox import PARKED, PENDING, REPLAYED, SENT, OutboundMessage, Outbox, insert_messages, message_row
from .payloads import payload_for
from .pump import Pumps, drain

__all__ = ["DeliveryError", "Destination", "OutboundMessage", "Outbox", "PARKED", "PENDING", "Pumps", "REPLAYED",
           "SENT", "drain", "enqueue_in", "enqueue_report", "parse", "payload_for", "requeue_study",
           "result_key", "resume"]


def _report_text(report, dumped: Optional[dict] = None) -> str:
    from ..jsontext import compact
    from ..mappers import report_json

    return compact(dumped if dumped is not None else report_json.dump(report))


def result_key(report, text: Optional[str] = None) -> str:
    """Idempotency key of a result: the same result is queued once per destination."""
    digest = hashlib.sha256((text or _report_text(report)).encode()).hexdigest()[:32]
    return f"{report.study.instance_uid}:{report.kind}:{digest}"


def enqueue_in(tx, settings, report, corrected: bool = False, key: Optional[str] = None,
               destinations: Optional[Iterable[str]] = None, dumped: Optional[dict] = None) -> list[str]:
    """Queue ``report`` for every destination in the store transaction ``tx`` (or on a Connection in
    a transaction), in one statement; a destination that has ``key`` queued already is skipped.
    ``key`` defaults to :func:`result_key`; ``dumped``: ``report_json.dump(report)`` when the caller
    has made it. Returns the destination URLs, to ``Pumps.kick`` once the transaction has committed."""
    urls = list(settings.destinations if destinations is None else destinations)
    if not urls:
        return []
    text = _report_text(report, dumped)
    key = key or result_key(report, text)
    rows = [message_row(url, parse(url).content_type, key, report=text, corrected=corrected) for url in urls]
    insert_messages(getattr(tx, "conn", tx), rows)
    return urls


def enqueue_report(pumps: Pumps, settings, report, corrected: bool = False, key: Optional[str] = None,
                   destinations: Optional[Iterable[str]] = None) -> list[str]:
    """Queue ``report`` in a transaction of its own on ``pumps``' outbox, then wake its senders (tools, tests)."""
    with pumps.outbox.engine.begin() as conn:
        urls = enqueue_in(conn, settings, report, corrected, key, destinations)
    for url in urls:
        pumps.kick(url)
    return urls


def requeue_study(store, study_uid: str, destinations: Iterable[str], corrected: bool = False) -> dict[str, list[int]]:
    """Queue again, for each of ``destinations``, the dose results of a study rebuilt from its kept
    reports (the merge the pipeline made, one result per kind and device), as new messages.
    KeyError when the store keeps no report of the study."""
    from ..aggregate import merge_reports
    from ..mappers import report_json
    from .outbox import M

    urls = list(destinations)
    queued: dict[str, list[int]] = {url: [] for url in urls}
    with store.transaction() as tx:
        kept = tx.dose_reports_for_study(study_uid, lock=True)
        if not kept:
            raise KeyError(study_uid)
        for result in merge_reports(map(report_json.load, kept)):
            text = _report_text(result)
            for url in urls:
                row = message_row(url, parse(url).content_type, None, report=text, corrected=corrected)
                queued[url].append(tx.conn.execute(M.insert().values(**row).returning(M.c.id)).scalar_one())
    return queued


def resume(pumps: Pumps, settings) -> list[str]:
    """Start sending every configured destination and every queue with pending messages (start-up);
    first queues what a pre-database outbox file in the data folder still held."""
    from pathlib import Path

    pumps.outbox.import_file(Path(settings.data_dir) / "outbox.sqlite")
    return pumps.resume(settings.destinations)
