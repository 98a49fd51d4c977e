"""Inbound HL7 v2: keep the raw message in the inbox, apply it through the pipeline, answer with an ACK.

Unlike the DICOM SCP, the MLLP listener acknowledges only after the message is
applied: an HL7 AA means "applied" (HL7 v2.5.1 §2.9.2 original mode), and a
sender holds the next message of its feed until it gets one. Every message is
applied in one ``Pipeline.transaction``: after the commit its inbox item is
marked and the committed changes go to the rules stage. An AE/AR message stays
in the inbox marked failed and can be replayed after a fix.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional

from ..inbox import DONE, FAILED, InboxError
from ..mappers.hl7v2.adt import patient_bundle, prior_identifiers
from ..mappers.hl7v2.datatypes import identifier_criterion
from ..mappers.hl7v2.orders import order_bundle
from ..store.errors import PreconditionFailed
from .ack import accept_ack_type, acknowledge, build_ack, encode_ack
from .errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    DUPLICATE_KEY,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    ContentError,
    Hl7Error,
    Location,
    MessageRejected,
    SenderRefused,
)
from .message import Inbound, decode, header_fields
from .senders import SenderPolicy

log = logging.getLogger(__name__)

PATIENT_EVENTS = ("A01", "A04", "A08", "A28", "A31")
ORDER_TYPES = (("ORM", "O01"), ("OMI", "O23"))
# store refusals (HTTP status of dacs_fhir.store.errors) that mean the content is wrong -> HL7 table 0357
STORE_REFUSALS = {400: DATA_TYPE_ERROR, 409: DUPLICATE_KEY, 412: DUPLICATE_KEY, 422: DATA_TYPE_ERROR}
# resources that carry a patient's dose records, re-pointed by a merge (search parameter "patient")
DOSE_RECORD_TYPES = ("Observation", "ImagingStudy", "ServiceRequest")


def sniff_meta(raw: bytes) -> dict:
    """Message type and control id read from the bytes (the inbox keeps them before any parsing)."""
    f = header_fields(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw)
    decode = lambda b: b.decode("latin-1")[:40]  # noqa: E731
    return {"type": decode(f[8]) if len(f) > 8 else "", "control_id": decode(f[9]) if len(f) > 9 else ""}


class Receiver:
    """Applies inbound HL7 v2 messages through the pipeline; one instance per listener."""

    def __init__(self, pipeline, senders: Optional[SenderPolicy] = None):
        self.pipeline = pipeline
        if senders is None:
            senders = SenderPolicy(getattr(pipeline.settings, "mllp_allowed_senders", ()))
        self.senders = senders
        # Raw messages go to the inbox's append-only journal before they are applied (a file per
        # message would cost more than applying it). The journal is fsync'd before an AE/AR or a
        # commit ACK is sent. An AA needs no fsync of the raw copy: the store has committed the
        # message durably before the AA leaves, and a message whose ACK never left is sent again by
        # its sender (HL7 original mode), so no accepted message is lost.
        self._journal = self.inbox.journal("hl7v2")
        self._lock = threading.Lock()  # one message at a time: feeds are ordered, SQLite has one writer
        self._queue: Optional[queue.Queue] = None  # enhanced mode: committed messages still to apply

    @property
    def store(self):
        return self.pipeline.store

    @property
    def inbox(self):
        return self.pipeline.inbox

    # ---- the MLLP handler
    def handle(self, raw: bytes, peer: Optional[str] = None) -> bytes:
        """Keep ``raw`` in the inbox, apply it, mark the item and return the ACK bytes; ``peer``: the
        sender's address, checked with MSH-3 / MSH-4 against the allow-list.

        Original mode (MSH-15 empty): AA / AE / AR once the message is applied. Enhanced mode
        (MSH-15 AL, ER, SU or NE; HL7 v2.5.1 §2.9.3): a commit acknowledgment once the message is
        kept durably, then the message is applied in arrival order in the background."""
        accept = accept_ack_type(raw)
        if accept:
            return self._commit(raw, accept, peer)
        item = self._journal.append(raw, sniff_meta(raw))
        check = (lambda inb: self._check_sender(inb, peer)) if self.senders else None
        return self.process(item.id, raw, item, check=check)[0]

    def _check_sender(self, inb: Inbound, peer: Optional[str]) -> None:
        if not self.senders.allows(peer, inb.value("MSH", 3, 1, 1), inb.value("MSH", 4, 1, 1)):
            raise SenderRefused()

    def _commit(self, raw: bytes, accept: str, peer: Optional[str]) -> bytes:
        """Enhanced mode: CA when kept durably (inbox fsync'd), CR when the message cannot be parsed, its
        type is not supported or its sender is not allowed (kept, marked failed), CE when it cannot be
        kept; sent as MSH-15 asks (AL always, NE never, ER on CR/CE only, SU on CA only). Application
        acknowledgments (MSH-16) are not sent: the outcome of each message is kept on its inbox item
        (``dacs-fhir inbox list``), failed ones replayable."""
        inbound, err, refused = None, None, False
        try:
            inbound = decode(raw)
            route(inbound)
            if self.senders:
                self._check_sender(inbound, peer)
        except Hl7Error as exc:
            refused = isinstance(exc, SenderRefused)
            err = Hl7Error(exc.reason, exc.code, exc.location)
            code = "CR"
        if err is None or refused:
            try:
                item = self._journal.append(raw, dict(sniff_meta(raw), accept=accept), durable=True)
            except InboxError:
                err, code = Hl7Error("message could not be kept; send it again", APPLICATION_INTERNAL_ERROR), "CE"
            else:
                if refused:
                    assert err is not None  # refused comes with its error
                    self.inbox.mark(item.id, FAILED, f"CR {err.code}: {err.reason}", ack="CR")
                else:
                    code = "CA"
                    self._applier().put(item)
        if err is not None:
            log.warning("HL7 message refused at commit (%s %s): %s", code, err.code, err.reason)
        if accept == "NE" or (accept == "ER" and code == "CA") or (accept == "SU" and code != "CA"):
            return b""
        return encode_ack(build_ack(inbound, code, err, raw=raw), inbound)

    def _applier(self) -> "queue.Queue":
        """The background thread that applies committed messages one at a time, in arrival order."""
        with self._lock:
            if self._queue is None:
                self._queue = queue.Queue()
                threading.Thread(target=self._apply_committed, name="hl7-apply", daemon=True).start()
            return self._queue

    def _apply_committed(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                self.process(item.id, item=item)
            except Exception:  # noqa: BLE001 - the item stays pending in the inbox, replayable
                log.exception("applying committed HL7 inbox item %s failed", item.id)
            finally:
                self._queue.task_done()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until every committed message so far has been applied (tests, shutdown)."""
        q = self._queue
        end = time.monotonic() + timeout
        while q is not None and q.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)

    def recover_pending(self) -> int:
        """Queue committed messages a crash left unapplied (enhanced mode), oldest first.

        Original-mode messages are not among them: one left pending was never acknowledged with an
        AA, so its sender sends it again, and applying the old copy later could undo a newer one."""
        pending = sorted((i for i in self.inbox.list(status="pending", kind="hl7v2") if i.meta.get("accept")),
                         key=lambda i: i.received)
        for item in pending:
            self._applier().put(item)
        return len(pending)

    def process(self, item_id: str, raw: Optional[bytes] = None, item=None,
                check: Optional[Callable[[Inbound], None]] = None) -> tuple[bytes, Optional[Hl7Error]]:
        """Apply an inbox item (again) and record its outcome; returns (ACK bytes, error or None).
        ``check`` runs on the decoded message before it is applied (the sender allow-list)."""
        raw = self.inbox.read(item_id) if raw is None else raw

        def mark(_changes) -> None:  # after the commit, before the rules stage and the AA
            # a fresh journal record: its status byte; anything else (a replay): the state file
            if item is None or not self._journal.set_status(item.key, DONE):
                self.inbox.mark(item_id, DONE, "", ack="AA")

        def apply(inb: Inbound) -> None:
            if check is not None:
                check(inb)
            self.apply(inb, item_id, mark)

        with self._lock:
            ack, inbound, err = acknowledge(raw, apply)
        if err is not None:
            if self.inbox.durable:  # kept for replay: on disk before the sender hears AE/AR
                self._journal.sync()
            self.inbox.mark(item_id, FAILED, f"{err.ack_code} {err.code}: {err.reason}", ack=err.ack_code)
            log.warning("HL7 inbox item %s answered %s: %s", item_id, err.ack_code, err.reason)
        return encode_ack(ack, inbound), err

    replay = process

    def apply(self, inb: Inbound, source: str = "", mark: Optional[Callable] = None) -> None:
        """Map and apply one message in one pipeline transaction (raises Hl7Error for an AE/AR)."""
        handler = route(inb)
        try:
            with self.pipeline.transaction(source, mark=mark) as tx:
                handler(tx, inb)
        except Hl7Error:
            raise
        except Exception as exc:
            status = getattr(exc, "status", None)
            code = STORE_REFUSALS.get(status) if status is not None else None
            if code is None:
                raise  # not about the content: AE 207 in ack.acknowledge
            # the store's own message may quote identifiers: the ACK and the log name only the kind of refusal
            raise ContentError(f"store refused the message: {type(exc).__name__}", code, Location("PID", 1, 3)) from exc


# ---- dispatch (HL7 v2.5.1 MSH-9)
def route(inb: Inbound) -> Callable:
    """The handler of a message type / trigger event; MessageRejected (AR 200 / 201) for the others."""
    code, trigger = inb.message_code, inb.trigger
    if code == "ADT":
        if trigger in PATIENT_EVENTS:
            return apply_patient
        if trigger == "A40":
            return apply_merge
        raise MessageRejected(f"unsupported event ADT^{trigger[:8]}", UNSUPPORTED_EVENT_CODE, Location("MSH", 1, 9, 1, 2))
    if (code, trigger) in ORDER_TYPES:
        return apply_order
    if code in dict(ORDER_TYPES):
        raise MessageRejected(f"unsupported event {code}^{trigger[:8]}", UNSUPPORTED_EVENT_CODE, Location("MSH", 1, 9, 1, 2))
    raise MessageRejected(f"unsupported message type {code[:8] or '(none)'}", UNSUPPORTED_MESSAGE_TYPE, Location("MSH", 1, 9, 1, 1))


# ---- handlers: each applies one mapped message in the transaction it is given
def apply_patient(tx, inb: Inbound) -> None:
    """ADT^A01/A04/A08/A28/A31: create or update the Patient (HL7 v2.5.1 §3.3)."""
    _apply_bundle(tx, patient_bundle(inb))


def apply_order(tx, inb: Inbound) -> None:
    """ORM^O01 / OMI^O23: Patient and ServiceRequest(s) by accession number."""
    _apply_bundle(tx, order_bundle(inb))


def apply_merge(tx, inb: Inbound) -> None:
    """ADT^A40 (HL7 v2.5.1 §3.3.40): re-point dose records to the surviving Patient, retire the prior one."""
    pid, olds = _apply_bundle(tx, patient_bundle(inb), prior=prior_identifiers(inb))
    if not olds:
        log.info("ADT^A40 %s: prior patient not known here, nothing to merge", inb.control_id)
        return
    survivor = f"Patient/{pid}"
    for old in olds:
        old_ref = f"Patient/{old['id']}"
        for rtype in DOSE_RECORD_TYPES:
            for res in _search_all(tx, rtype, [("patient", old_ref)]):
                tx.update(rtype, res["id"], _rewrite_refs(res, old_ref, survivor), validate=False)
        old = dict(old, active=False)
        old["link"] = [link for link in old.get("link", []) if link.get("type") != "replaced-by"]
        old["link"].append({"other": {"reference": survivor}, "type": "replaced-by"})
        tx.update("Patient", old["id"], old, validate=False)


def _apply_bundle(tx, bundle: dict, prior: list[dict] | tuple = ()) -> tuple[str, list[dict]]:
    """Write a mapped transaction Bundle (Patient first, then conditional entries) straight through the
    transaction; returns the Patient's id and the other Patients holding a ``prior`` identifier (A40).

    The Patient updates an existing Patient found by any of its identifiers. Every criterion (the
    Patient's identifiers, the prior ones, each entry's conditional query) is matched in one statement
    before anything is written; the Patient is written once (with its ``replaces`` links on a merge).
    The mapping builds each value through typed conversions, tested against the R4 models on every
    corpus message: the store's model validation, which costs more than the write, is skipped."""
    entry, rest = bundle["entry"][0], bundle["entry"][1:]
    patient = entry["resource"]
    mine = [identifier_criterion(i["system"], i["value"]) for i in patient["identifier"]]
    theirs = [identifier_criterion(i["system"], i["value"]) for i in prior]
    queries = [(e["resource"]["resourceType"], e["request"].get("ifNoneExist") or e["request"]["url"].partition("?")[2])
               for e in rest]
    tx.prefetch_matches([("Patient", q) for q in mine + theirs] + queries)
    # every match comes before the first write (a write drops what was matched ahead)
    found = _patients(tx, mine)
    matched = [tx.match(rtype, query) for rtype, query in queries]
    if found:
        target = next((p for p in found if p.get("active", True)), found[0])
        pid, resource = target["id"], _merged_patient(target, patient)
    else:
        pid, resource = tx.mint("Patient"), dict(patient)
    olds = [p for p in _patients(tx, theirs) if p["id"] != pid] if theirs else []
    if olds:
        links = list(resource.get("link", []))
        for old in olds:
            ref = f"Patient/{old['id']}"
            if not any(link.get("other", {}).get("reference") == ref for link in links):
                links.append({"other": {"reference": ref}, "type": "replaces"})
        resource["link"] = links
    tx.update("Patient", pid, {**resource, "id": pid}, validate=False)
    ref = f"Patient/{pid}"
    for e, (rtype, _query), ids in zip(rest, queries, matched, strict=True):
        res = _rewrite_refs(e["resource"], entry["fullUrl"], ref)
        if e["request"]["method"] == "POST":  # conditional create: a replay adds nothing
            if not ids:
                tx.create(res, validate=False)
            continue
        if len(ids) > 1:  # conditional update (R4 http.html#cond-update)
            raise PreconditionFailed(f"conditional update of {rtype} matches {len(ids)} resources")
        rid = ids[0] if ids else tx.mint(rtype)
        tx.update(rtype, rid, {**res, "id": rid}, validate=False)
    return pid, olds


def _patients(tx, criteria: list[str]) -> list[dict]:
    """Current Patients matching any of ``criteria`` (``identifier=system|value``), each once."""
    ids: list[str] = []
    for query in criteria:
        ids += [rid for rid in tx.match("Patient", query, limit=100) if rid not in ids]
    return [tx.read("Patient", rid) for rid in ids]


def _rewrite_refs(node, old: str, new: str):
    """``node`` with every ``reference`` equal to ``old`` set to ``new``; parts without one are kept as
    they are (not copied), and leaves are looked at in their container's loop, not by a call each."""
    out = None
    for key, value in (node.items() if type(node) is dict else enumerate(node)):
        kind = type(value)
        if kind is str:
            if key != "reference" or value != old:
                continue
            changed = new
        elif kind is dict or kind is list:
            changed = _rewrite_refs(value, old, new)
            if changed is value:
                continue
        else:
            continue
        if out is None:
            out = type(node)(node)
        out[key] = changed
    return node if out is None else out


def _search_all(tx, rtype: str, params: list[tuple[str, str]]) -> list[dict]:
    out: list[dict] = []
    offset = 0
    while True:
        page = tx.search(rtype, params, count=100, offset=offset)
        out.extend(page.resources)
        offset += len(page.resources)
        if not page.resources or (page.total is not None and offset >= page.total):
            return out


def _merged_patient(existing: dict, new: dict) -> dict:
    """The Patient as the message says it, keeping identifiers and links that other sources added."""
    seen = {(i.get("system"), i.get("value")) for i in new.get("identifier", [])}
    extra = [i for i in existing.get("identifier", []) if (i.get("system"), i.get("value")) not in seen]
    out = dict(new, identifier=new.get("identifier", []) + extra)
    if existing.get("link"):
        out["link"] = existing["link"]
        if any(link.get("type") == "replaced-by" for link in existing["link"]):
            out["active"] = False
    return out
