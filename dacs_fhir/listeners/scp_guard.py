"""The Storage SCP's guard against hostile or broken peers: data sets streamed to disk, limits.

Installed on each accepted association when its connection opens (EVT_CONN_OPEN), it
- writes each C-STORE data set to an inbox spool file as its P-DATA fragments arrive (PS3.8 §9.3.5,
  Annex E), so memory stays bounded whatever the object's size; past the configured maximum the
  rest is read and dropped and the handler answers 0xA700; an invalid UID keeps nothing;
- refuses an A-ASSOCIATE-RQ over the limits per calling AE title, per peer address and in total
  with A-ASSOCIATE-RJ rejected-transient, service-provider (presentation), local-limit-exceeded
  (PS3.8 §9.3.4: result 2, source 3, reason 2); connections that never associate count for nothing;
- closes a connection whose PDU header announces more than a PDU may hold (a length field of 4 GiB
  would otherwise be read into memory), and aborts an association whose command set, or data set of
  a message other than C-STORE, grows past a bound (pynetdicom would hold it all in memory).

- ends at once a connection closed before its A-ASSOCIATE-RQ (pynetdicom waits out the ACSE timeout).

It relies on pynetdicom 3.0 internals, checked by tests/integration/test_dicom_hostile.py:
``DIMSEServiceProvider.receive_primitive`` / ``.message`` (the message being decoded),
``ACSE._negotiate_as_acceptor``, ``AssociationSocket.recv`` and ``DULServiceProvider.to_user_queue``.
"""
from __future__ import annotations

import itertools
import logging
import re
import threading
from typing import Optional

from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from pynetdicom.pdu_primitives import P_DATA

from ..inbox import Inbox, Spool

log = logging.getLogger(__name__)

# PS3.5 §9.1: components of digits without leading zeros (a lone 0 allowed), separated by '.', ≤ 64 chars
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\Z")
# what real modalities send beside it and is still kept: leading zeros, a signed component (a Philips
# Allura RDSR of the corpus: "….971.00.-1489…"); anything else (empty components, letters, '/') is refused
_TOLERATED_UID = re.compile(r"[0-9]+(\.-?[0-9]+)*\Z")
# what a message other than a C-STORE data set may make us hold in memory: more aborts the association
COMMAND_SET_LIMIT = 64 * 1024  # a command set is a few hundred bytes (PS3.7 §9.3)
OTHER_DATASET_LIMIT = 1024 * 1024  # a data set of any other message (C-ECHO has none)
_refs = itertools.count(1)


def valid_uid(value: str) -> bool:
    """True when ``value`` is a UID as PS3.5 §9.1 defines it."""
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def acceptable_uid(value: str) -> bool:
    """True when ``value`` is a UID, or breaks PS3.5 §9.1 only as deployed modalities do (kept, flagged)."""
    return 0 < len(value) <= 64 and _TOLERATED_UID.match(value) is not None


class Incoming:
    """One C-STORE data set as it arrives: its spool file (None when nothing is kept) and size."""

    def __init__(self, ref: str, spool: Optional[Spool], max_bytes: int, error: str = ""):
        self.ref, self.spool, self.max_bytes, self.error = ref, spool, max_bytes, error
        self.size = 0
        self.too_large = False

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.spool is None:
            return
        if self.size > self.max_bytes:
            self.too_large = True
            self.spool.discard()  # the rest of the object is read and dropped
            self.spool = None
            return
        try:
            self.spool.write(data)
        except OSError as exc:  # disk full: the handler answers 0xA700
            self.error = exc.strerror or str(exc)
            self.spool.discard()
            self.spool = None

    @staticmethod
    def of(event) -> Optional["Incoming"]:
        """The data set the guard received for this C-STORE event; None on an unguarded association."""
        guard = getattr(event.assoc, "_dacs_guard", None)
        ref = getattr(event.request, "_dataset_path", None)
        if guard is None or not isinstance(ref, str):
            return None
        with guard.lock:
            return guard.pending.pop(ref, None)


class _Guard:
    """Per association: streams C-STORE data sets to spool files (wraps ``dimse.receive_primitive``)."""

    def __init__(self, assoc, inbox: Inbox, max_bytes: int):
        self.assoc, self.inbox, self.max_bytes = assoc, inbox, max_bytes
        self.original = assoc.dimse.receive_primitive
        self.pending: dict[str, Incoming] = {}
        self.lock = threading.Lock()

    def receive_primitive(self, primitive: P_DATA) -> None:
        pdvs = primitive.presentation_data_value_list
        if len(pdvs) == 1:
            # pynetdicom builds and reads these items as [context id, data] lists; its annotation says tuples
            primitive.presentation_data_value_list = [self._filter(*pdvs[0])]  # type: ignore[list-item]
            self.original(primitive)
            return
        for cx, data in pdvs:  # one at a time: a command fragment may come before data set ones
            one = P_DATA()
            one.presentation_data_value_list = [self._filter(cx, data)]  # type: ignore[list-item]
            self.original(one)

    def _filter(self, cx: int, data: bytes) -> list:
        """The PDV to hand to pynetdicom: a C-STORE data set fragment's bytes go to the spool instead
        (PS3.8 E.2: bit 0 of the message control header is 0 for a data set fragment). Raising here
        makes pynetdicom's DUL abort the association (A-ABORT)."""
        msg = self.assoc.dimse.message
        if not data:
            return [cx, data]
        if data[0] & 1:
            if msg is not None and msg.encoded_command_set.tell() + len(data) > COMMAND_SET_LIMIT:
                raise ValueError(f"command set larger than {COMMAND_SET_LIMIT} bytes")
            return [cx, data]
        if msg is not None and type(msg).__name__ == "C_STORE_RQ":
            incoming = getattr(msg, "_dacs_incoming", None) or self._begin(msg, cx)
            incoming.write(bytes(data[1:]))
            return [cx, bytes(data[:1])]
        buffered = msg.data_set.tell() if msg is not None and msg.data_set is not None else 0
        if buffered + len(data) > OTHER_DATASET_LIMIT:
            raise ValueError(f"data set of a message other than C-STORE larger than {OTHER_DATASET_LIMIT} bytes")
        return [cx, data]

    def _begin(self, msg, cx: int) -> Incoming:
        cs = msg.command_set
        uid = str(cs.AffectedSOPInstanceUID or "").strip()
        ref = f"dacs-incoming-{next(_refs)}"
        spool, error = None, ""
        if acceptable_uid(uid):  # else nothing is kept: the handler refuses it
            try:
                spool = self.inbox.spool()
                meta = create_file_meta(sop_class_uid=UID(str(cs.AffectedSOPClassUID or "")), sop_instance_uid=UID(uid),
                                        transfer_syntax=self.assoc._accepted_cx[cx].transfer_syntax[0])
                spool.write(b"\x00" * 128 + b"DICM" + encode_file_meta(meta))  # PS3.10 §7.1, as encoded_dataset()
            except (OSError, KeyError, ValueError) as exc:
                error = str(exc) or type(exc).__name__
                if spool is not None:
                    spool.discard()
                spool = None
        incoming = Incoming(ref, spool, self.max_bytes, error)
        msg._dacs_incoming = incoming
        msg._data_set_path = ref  # carried to the C-STORE primitive: how the handler finds it
        with self.lock:
            self.pending[ref] = incoming
        return incoming

    def close(self) -> None:
        """The connection closed: drop data sets received but never handled."""
        with self.lock:
            left, self.pending = list(self.pending.values()), {}
        for incoming in left:
            if incoming.spool is not None:
                incoming.spool.discard()


def _admit(assoc, server, per_peer: int, total: int) -> None:
    """Wrap the acceptor's negotiation with the per-AE, per-address and total association limits."""
    acse = assoc.acse
    negotiate = acse._negotiate_as_acceptor

    def negotiate_with_limits() -> None:
        calling = str(acse.requestor.primitive.calling_ae_title or "").strip()
        allowed = [a.strip() for a in assoc.ae.require_calling_aet]
        if not allowed or calling in allowed:  # others are refused (1, 1, 3) by pynetdicom, holding no slot
            address = assoc.requestor.address
            with server.admit_lock:
                held = [a._dacs_peer for a in server.active_associations if a is not assoc and getattr(a, "_dacs_peer", None)]
                if (len(held) >= total or sum(ae == calling for ae, _ in held) >= per_peer
                        or sum(ad == address for _, ad in held) >= per_peer):
                    log.warning("A-ASSOCIATE-RJ (2, 3, 2) to %s: %d associations held", address, len(held))
                    acse.send_reject(0x02, 0x03, 0x02)  # PS3.8 §9.3.4: transient, local-limit-exceeded
                    evt.trigger(assoc, evt.EVT_REJECTED, {})
                    assoc.kill()
                    return
                assoc._dacs_peer = (calling, address)
        negotiate()

    acse._negotiate_as_acceptor = negotiate_with_limits


def _cap_pdu(assoc, limit: int) -> None:
    """Close the connection when a PDU header announces more than ``limit`` bytes (PS3.8 §9.3.1)."""
    sock = assoc.dul.socket
    recv = sock.recv

    def capped(nbytes: int):
        if nbytes > limit:
            raise OSError(f"PDU of {nbytes} bytes announced, more than {limit}")
        return recv(nbytes)

    sock.recv = capped


def install_guard(server, inbox: Inbox, settings) -> None:
    """Bind the guard to every association ``server`` accepts (before its thread starts)."""
    server.admit_lock = threading.Lock()
    pdu_limit = max(settings.dicom_max_pdu, 1024 * 1024) if settings.dicom_max_pdu else settings.dicom_max_object_bytes + 1024

    def on_open(event) -> None:
        assoc = event.assoc
        guard = _Guard(assoc, inbox, settings.dicom_max_object_bytes)
        assoc._dacs_guard = guard
        assoc.dimse.receive_primitive = guard.receive_primitive
        _admit(assoc, server, settings.dicom_max_associations_per_peer, settings.dicom_max_associations)
        _cap_pdu(assoc, pdu_limit)

    def on_close(event) -> None:
        assoc = event.assoc
        guard = getattr(assoc, "_dacs_guard", None)
        if guard is not None:
            guard.close()
        if assoc.is_acceptor and assoc.requestor.primitive is None:
            # closed before its A-ASSOCIATE-RQ: pynetdicom's acceptor would wait out the ACSE timeout
            # for a request that cannot come, holding a slot; an empty item ends that wait now
            assoc.dul.to_user_queue.put(None)

    server.bind(evt.EVT_CONN_OPEN, on_open)
    server.bind(evt.EVT_CONN_CLOSE, on_close)
