"""DICOM Storage SCP: C-ECHO and C-STORE into the raw inbox (PS3.4 Annex A and B).

The C-STORE handler keeps the object exactly as received (file meta + dataset,
pixel data never decoded) as a new inbox item (the SOP Instance UID is metadata,
never a file name), hands the item to ``on_stored`` and answers Success. It never
parses or maps: a corrupt or non-dose object is acknowledged once it is safely
stored, and its processing failure is recorded on the inbox item. Refused: an
invalid Affected SOP Instance UID (0xC000), an object above the size limit and a
failed inbox write (0xA700, so that the sender keeps the object and retries).
Data sets stream to disk as they arrive (``scp_guard``), and associations are
limited per calling AE title and per peer address. See docs/dicom-conformance.md.
"""
from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Callable, Optional, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.transport import ThreadedAssociationServer

from ..config import Settings
from ..inbox import Inbox, InboxItem
from ..transport.dicom import add_storage_contexts, configure_ae, set_nodelay
from .scp_guard import Incoming, acceptable_uid, install_guard, valid_uid

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3: Refused, out of resources
CANNOT_UNDERSTAND = 0xC000  # PS3.4 B.2.3: Error, cannot understand (Cxxx): a UID that breaks PS3.5 §9.1

OnStored = Callable[[InboxItem], object]


def _status(code: int, comment: str) -> Dataset:
    """A C-STORE-RSP status with its Error Comment (0000,0902), PS3.7 C.4 (at most 64 characters)."""
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]
    return ds


class StoreHandler:
    """EVT_C_STORE: keep the object in the inbox, hand it on, answer; the one place statuses are chosen."""

    def __init__(self, inbox: Inbox, on_stored: Optional[OnStored] = None, max_bytes: int = 512 * 1024 * 1024):
        self.inbox = inbox
        self.on_stored = on_stored
        self.max_bytes = max_bytes

    def __call__(self, event) -> int | Dataset:
        req = event.request
        incoming: Optional[Incoming] = Incoming.of(event)  # streamed to disk by the guard, or None
        try:
            return self._store(event, req, incoming)
        finally:
            if incoming is not None and incoming.spool is not None:
                incoming.spool.discard()  # kept (renamed away) or refused: nothing left behind

    def _store(self, event, req, incoming: Optional[Incoming]) -> int | Dataset:
        sop_uid = str(req.AffectedSOPInstanceUID or "").strip()
        if not acceptable_uid(sop_uid):
            log.warning("C-STORE refused (0xC000): Affected SOP Instance UID is not a valid UID")
            return _status(CANNOT_UNDERSTAND, "Affected SOP Instance UID invalid (PS3.5 9.1)")
        size = incoming.size if incoming is not None else len(req.DataSet.getvalue())
        if (incoming is not None and incoming.too_large) or size > self.max_bytes:
            log.warning("C-STORE refused (0xA700): data set larger than %d bytes", self.max_bytes)
            return _status(OUT_OF_RESOURCES, f"data set larger than {self.max_bytes} bytes")
        meta = {
            "calling_ae": event.assoc.remote["ae_title"],  # the sender: also right for C-GET, where we requested
            "transfer_syntax": str(event.context.transfer_syntax),
            "sop_class": str(event.context.abstract_syntax),
            "sop_instance_uid": sop_uid,
        }
        if not valid_uid(sop_uid):
            meta["uid_nonconformant"] = True  # PS3.5 §9.1 broken as some modalities do: kept, flagged
        originator = req.MoveOriginatorApplicationEntityTitle  # set when a PACS sends for a C-MOVE
        if originator:
            meta["move_originator"] = str(originator).strip()
        try:
            if incoming is not None:
                if incoming.spool is None:  # the spool could not be written (disk full …)
                    raise OSError(incoming.error or "data set not kept")
                item = self.inbox.put_spool("dicom", incoming.spool, meta=meta)
                incoming.spool = None  # moved into the inbox: nothing to discard
            else:  # an association without the guard (an SCU's C-GET): the data set is in memory
                item = self.inbox.put("dicom", event.encoded_dataset(), meta=meta)
        except OSError as exc:  # InboxError: disk full, permissions, …
            log.error("C-STORE refused (0xA700), inbox write failed: %s", exc)
            return OUT_OF_RESOURCES
        if self.on_stored is not None:
            try:
                self.on_stored(item)
            except Exception:  # noqa: BLE001 - the object is durable; pending items are re-enqueued on start
                log.exception("enqueueing %s failed; it stays pending in the inbox", item.id)
        return SUCCESS


def _echo(event) -> int:
    return SUCCESS


def tls_context(settings: Settings) -> Optional[ssl.SSLContext]:
    """Server-side DICOM TLS (PS3.15 B.9 BCP 195 profile); mutual TLS when a CA is configured."""
    if not settings.dicom_tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.dicom_tls_cert, settings.dicom_tls_key or None)
    if settings.dicom_tls_ca:
        ctx.load_verify_locations(settings.dicom_tls_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Server(ThreadedAssociationServer):
    """Association server that runs the TLS handshake in the connection's own thread, and drops a
    connection over the per-address or total connection limit before it costs a thread.

    pynetdicom wraps sockets in the accept loop, where one silent client would
    block every other sender; here a handshake is bounded by the ACSE timeout.
    """

    tls: Optional[ssl.SSLContext] = None
    handshake_timeout: float = 30.0
    max_connections: int = 64
    max_connections_per_address: int = 16

    def get_request(self):
        assert self.socket is not None  # bound and listening before serve_forever
        sock, address = self.socket.accept()
        return sock, address

    def verify_request(self, request, client_address) -> bool:
        """Runs in the accept loop: False closes the connection at once (no A-ASSOCIATE-RQ read yet)."""
        live = self.active_associations
        same = sum(1 for a in live if a.requestor.address_info is not None and a.requestor.address == client_address[0])
        if len(live) >= self.max_connections or same >= self.max_connections_per_address:
            log.warning("DICOM connection from %s dropped: %d connections open (%d from it)", client_address[0], len(live), same)
            return False
        return True

    def process_request_thread(self, request, client_address) -> None:
        if self.tls is not None:
            try:
                request.settimeout(self.handshake_timeout)
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (OSError, ValueError) as exc:
                log.warning("DICOM TLS handshake with %s failed: %s", client_address[0], exc)
                try:
                    request.close()
                except OSError:
                    pass
                return
        super().process_request_thread(request, client_address)


@dataclass
class ScpHandle:
    """A running SCP: its bound ``port`` and ``stop()``."""

    ae: AE
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        for assoc in self.server.active_associations:
            assoc.abort()
        self.server.shutdown()
        self.thread.join(timeout=5)


def start_scp(settings: Settings, on_stored: Optional[OnStored] = None, inbox: Optional[Inbox] = None) -> ScpHandle:
    """Start the Storage SCP on ``settings.dicom`` (port 0: a free port) in background threads."""
    ae = configure_ae(AE(ae_title=settings.ae_title), settings)
    # pynetdicom's own limit counts connections still waiting for their A-ASSOCIATE-RQ; ours (the
    # guard) counts associations per calling AE and address, so pynetdicom's is only a backstop
    ae.maximum_associations = 4 * settings.dicom_max_associations
    add_storage_contexts(ae)
    if settings.dicom_allowed_aets:
        ae.require_calling_aet = list(settings.dicom_allowed_aets)  # others: A-ASSOCIATE-RJ (1, 1, 3)
    inbox = inbox or Inbox(settings.inbox_dir)
    handlers: list[EventHandlerType] = [
        (evt.EVT_CONN_OPEN, set_nodelay),
        (evt.EVT_C_ECHO, _echo),
        (evt.EVT_C_STORE, StoreHandler(inbox, on_stored, settings.dicom_max_object_bytes)),
    ]
    host, port = settings.dicom
    server = cast(_Server, ae.make_server((host, port), evt_handlers=handlers, server_class=_Server))
    install_guard(server, inbox, settings)
    server.tls = tls_context(settings)
    server.handshake_timeout = settings.dicom_acse_timeout
    server.max_connections = 2 * settings.dicom_max_associations
    server.max_connections_per_address = 2 * settings.dicom_max_associations_per_peer
    thread = threading.Thread(target=server.serve_forever, name=f"dicom-scp-{server.server_address[1]}", daemon=True)
    thread.start()
    ae._servers.append(server)  # so AE.shutdown() reaches it, as for AE.start_server
    return ScpHandle(ae, server, thread)
