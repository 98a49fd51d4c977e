"""The ingest pipeline, in one screen.

    receive:  raw bytes ─▶ inbox (fsync'd) ─▶ enqueue (Celery, or in-process)
    process:  inbox ─▶ quirk fixes + parse (mappers.dicom) ─▶ DoseReport
              ─▶ merge with the study's earlier reports (aggregate)
              ─▶ FHIR transaction Bundle (mappers.fhir) ─▶ store, one transaction
              ─▶ after commit: rules hook ─▶ inbox item marked done / failed(reason)

Used by the DICOM SCP, ``dacs-fhir import``, the REST API and the HL7 listener.
"""
from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from sqlalchemy.exc import OperationalError

from . import rules
from .config import Settings
from .domain import DoseReport
from .errors import RejectedInput, TransientError
from .inbox import DONE, FAILED, Inbox, InboxItem

if TYPE_CHECKING:
    from .delivery import Pumps
    from .store import Change, Store, Transaction
    from .tasks import TaskLayer

log = logging.getLogger(__name__)

IMPORTED, UPDATED, DUPLICATE, REJECTED = "imported", "updated", "duplicate", "rejected"


@dataclass
class Outcome:
    status: str  # imported | updated | duplicate | rejected
    reason: str = ""
    item_id: str = ""
    study_uid: str = ""
    resources: list[str] = field(default_factory=list)  # "Type/id" written
    report: Optional[DoseReport] = field(default=None, repr=False)  # the study's merged report, when one was written


class Pipeline:
    """Composition of inbox, mappers, store and rules for one deployment."""

    def __init__(self, settings: Settings, store: "Store", inbox: Inbox, tasks: "TaskLayer", deliveries: "Pumps"):
        """Built by the composition root (:func:`dacs_fhir.composition.build_pipeline`)."""
        self.settings = settings
        self.store = store
        self.inbox = inbox
        self.tasks = tasks
        self.deliveries = deliveries  # the senders of the outbox (dose results to the EHR / RIS)

    # ---- apply: every channel writes through this
    @contextmanager
    def transaction(self, source: str = "", mark: Optional[Callable[[list[Change]], None]] = None) -> Iterator[Transaction]:
        """Apply: one store transaction of a channel (DICOM, HL7 v2, FHIR REST, import). Once it has
        committed, ``mark`` records the outcome on the inbox item, then the changes (type, id,
        version, previous version) are handed to the rules stage. ``source``: the inbox item id."""
        with self.store.transaction() as tx:
            yield tx
        changes = tx.changes
        if mark is not None:
            mark(changes)
        self.hand_off(changes, source)

    def hand_off(self, changes: list[Change], source: str = "") -> None:
        """Give committed changes to the rules stage, run off the request path by the task layer (a
        failure is logged and never undoes the write)."""
        if not changes or not rules.wanted():
            return
        try:
            self.tasks.enqueue_rules(rules.ChangeSet(source, tuple(changes)))
        except Exception:
            log.exception("handing the changes of %s to the rules stage failed", source)

    # ---- receive: listeners call this and acknowledge as soon as it returns
    def receive(self, kind: str, data: bytes, key: Optional[str] = None, meta: Optional[dict] = None) -> InboxItem:
        """Keep ``data`` durably in the inbox, then enqueue its processing."""
        item = self.inbox.put(kind, data, key=key, meta=meta)
        self.tasks.enqueue_processing(item.id)
        return item

    def enqueue(self, item: InboxItem) -> None:
        """Enqueue processing of an item a listener already put in the inbox."""
        self.tasks.enqueue_processing(item.id)

    def recover_pending(self) -> int:
        """Enqueue every item still pending (after a crash); processing is idempotent."""
        n = 0
        for item in self.inbox.list(status="pending"):
            if item.kind in ("dicom", "file"):
                self.enqueue(item)
                n += 1
        return n

    # ---- process: run by the task layer
    def process(self, item_id: str) -> Outcome:
        """Map and store one inbox item; records the outcome on the item."""
        raw = self.inbox.read(item_id)
        if item_id.startswith("hl7v2/"):
            return self._process_hl7(item_id, raw)
        try:
            if raw.lstrip()[:1] in (b"{", b"["):
                outcome = self.ingest_fhir(raw, item_id)
            else:
                from .mappers.dicom import parse

                outcome = self.ingest_report(parse(raw), item_id)
        except RejectedInput as err:
            outcome = Outcome(REJECTED, reason=str(err))
        except OperationalError as exc:
            raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc
        outcome.item_id = item_id
        if outcome.status == REJECTED:
            self.inbox.mark(item_id, FAILED, outcome.reason)
            log.warning("inbox item %s rejected: %s", item_id, outcome.reason)
        else:
            self.inbox.mark(item_id, DONE, "", outcome=outcome.status, study=outcome.study_uid)
        return outcome

    def ingest_report(self, report: DoseReport, source: str = "") -> Outcome:
        """Store a mapped report, merged with the reports already held for its study.

        Each object's own report is kept; the study's FHIR resources are rebuilt from
        the merge of all of them, so arrival order does not matter and the same
        object twice is a duplicate that writes nothing.
        """
        from . import delivery
        from .aggregate import merge_reports
        from .mappers import report_json
        from .mappers.fhir import to_bundle

        mine = report_json.dump(report)
        with self.transaction(source) as tx:
            # objects of one study are merged one at a time, whatever the number of workers
            kept = tx.dose_reports_for_study(report.study.instance_uid, lock=True)
            if mine in kept:
                return Outcome(DUPLICATE, study_uid=report.study.instance_uid)
            earlier = [r for r in map(report_json.load, kept) if r.sop_instance_uid != report.sop_instance_uid]
            merged = self._merged_for(report, merge_reports(earlier + [report]))
            bundle = to_bundle(merged, conditional="update")
            _check_profiles(bundle)
            # checked against the profiles just above: the store skips its R4 model validation; the
            # writes go to the database with the dose rows below, in one round trip
            response = tx.process_bundle(bundle, validate=False, flush=False)
            written = _written(bundle, response)
            stored = [e["resource"] for e in response.get("entry", []) if "resource" in e]
            tx.record_dose_report(merged, kept=report, kept_json=mine, resources=stored)  # kept: for later merges
            status = UPDATED if any(r.kind == report.kind for r in earlier) else IMPORTED
            # the result for the EHR (ORU^R01, FHIR) is queued with the record: committed together or not at all
            queued = delivery.enqueue_in(tx, self.settings, merged, corrected=status == UPDATED,
                                         dumped=mine if merged is report else None)
            outcome = Outcome(status, study_uid=report.study.instance_uid, resources=sorted(set(written.values())), report=merged)
        self._wake_delivery(queued)
        return outcome

    @staticmethod
    def _merged_for(report: DoseReport, merged: list[DoseReport]) -> DoseReport:
        mine = report.source_instances or (report.sop_instance_uid,)
        for candidate in merged:
            if set(mine) & set(candidate.source_instances or (candidate.sop_instance_uid,)):
                return candidate
        return report

    def ingest_fhir(self, raw: bytes, source: str = "") -> Outcome:
        """A FHIR resource or Bundle (JSON) written through the store; refused (RejectedInput) when it is
        not FHIR JSON, nests deeper than ``jsontext.MAX_DEPTH``, breaks a profile it claims (ours or the
        RDS IG's) or is refused by the store."""
        from .errors import RejectedInput as Rejected
        from .jsontext import MAX_DEPTH, nesting_depth
        from .profiles import validate, validate_bundle
        from .store.errors import StoreError

        if nesting_depth(raw) > MAX_DEPTH:
            raise Rejected(f"invalid FHIR JSON: objects and arrays nest deeper than {MAX_DEPTH} levels")
        try:
            resource = json.loads(raw)
        except ValueError as exc:
            raise Rejected(f"invalid FHIR JSON: {exc}") from None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise Rejected("invalid FHIR JSON: no resourceType")
        bundle = resource["resourceType"] == "Bundle" and resource.get("type") in ("transaction", "batch")
        _refuse_profile_errors(validate_bundle(resource) if bundle else validate(resource), "imported resources")
        try:
            with self.transaction(source) as tx:
                if bundle:
                    response = tx.process_bundle(resource)
                    written = [e.get("response", {}).get("location", "") for e in response.get("entry", [])]
                else:
                    out = tx.create(resource)
                    written = [f"{out.resource['resourceType']}/{out.resource['id']}"]
        except StoreError as exc:
            if exc.status >= 500:
                raise
            raise Rejected(f"refused by the store ({exc.status}): {exc}") from None
        return Outcome(IMPORTED, resources=[w for w in written if w])

    def _process_hl7(self, item_id: str, raw: bytes) -> Outcome:
        """An HL7 v2 message (replay of an AE/AR one): applied by the HL7 receiver, which marks the item."""
        from .hl7v2.receiver import Receiver

        _ack, err = Receiver(self).process(item_id, raw)
        if err is not None:
            return Outcome(REJECTED, reason=f"{err.ack_code} {err.code}: {err.reason}", item_id=item_id)
        return Outcome(IMPORTED, item_id=item_id)

    def _wake_delivery(self, urls: list[str]) -> None:
        """After commit: wake the senders of ``urls`` (the messages are queued already; a lost wake-up
        only delays them until a sender looks again)."""
        for url in urls:
            try:
                self.deliveries.kick(url)
            except Exception:
                log.exception("waking the sender of a destination failed (the message stays queued)")

    def warm_up(self) -> None:
        """Load what processing an object needs (mappers, profiles, FHIR model classes, search
        parameters) by mapping the built-in sample objects, storing nothing. A worker does this
        before its pool forks, so each pool process starts with them (loading them took a pool
        process about a second of CPU, spent on its first objects)."""
        from .mappers import report_json
        from .mappers.dicom import parse
        from .mappers.fhir import to_bundle
        from .samples import sample_objects
        from .store import searchparams, validation

        for _name, data in sample_objects():
            report = parse(data)
            report_json.load(report_json.dump(report))
            bundle = to_bundle(report, conditional="update")
            _check_profiles(bundle)
            for entry in bundle.get("entry", []):
                resource = entry["resource"]
                searchparams.extract(validation.resource_type(resource), resource)



def _check_profiles(bundle: dict) -> None:
    """MappingError (the object stays in the inbox, failed with the reason) when a mapped bundle's
    resources break a profile they claim (RDS IG and ours): cardinality, fixed values, slices,
    bindings, UCUM units."""
    from .profiles import validate_bundle

    _refuse_profile_errors(validate_bundle(bundle), "mapped resources")


def _refuse_profile_errors(issues, what: str) -> None:
    """MappingError naming the first error of ``issues`` (and how many more), when there is one."""
    from .errors import MappingError

    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise MappingError(f"{what} break their profiles: {errors[0].path}: {errors[0].message}"
                           + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def _written(bundle: dict, response: dict) -> dict[str, str]:
    """Map each request fullUrl of ``bundle`` to the ``Type/id`` the store wrote."""
    out: dict[str, str] = {}
    for req, res in zip(bundle.get("entry", []), response.get("entry", []), strict=True):
        location = (res.get("response") or {}).get("location", "")
        if location:
            parts = location.split("/")
            out[req.get("fullUrl", "")] = "/".join(parts[-4:-2] if "_history" in parts else parts[-2:])
    return out
