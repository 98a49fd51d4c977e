"""DICOM Storage SCP: C-ECHO and C-STORE into the raw inbox (PS3.4 Annex A and B).

The C-STORE handler keeps the object exactly as received (file meta + dataset,
pixel data never decoded) in the inbox, keyed by SOP Instance UID, hands the
item to ``on_stored`` and answers Success. It never parses or maps: a corrupt or
non-dose object is acknowledged once it is safely stored, and its processing
failure is recorded on the inbox item. Only a failed inbox write is refused
(0xA700 Out of Resources) so that the sender keeps the object and retries.
See docs/dicom-conformance.md.
"""
from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from pydicom import uid as tsuid
from pynetdicom import AE, evt
from pynetdicom import sop_class as sc
from pynetdicom.transport import ThreadedAssociationServer

from ..config import Settings
from ..inbox import Inbox, InboxItem

log = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # PS3.4 B.2.3: Refused, out of resources

DOSE_SR_CLASSES = (
    sc.XRayRadiationDoseSRStorage,
    sc.RadiopharmaceuticalRadiationDoseSRStorage,
    sc.EnhancedSRStorage,
    sc.ComprehensiveSRStorage,
    sc.Comprehensive3DSRStorage,
)
# images whose headers carry dose attributes (legacy extraction), and dose screens
IMAGE_CLASSES = (
    sc.CTImageStorage,
    sc.EnhancedCTImageStorage,
    sc.DigitalXRayImageStorageForPresentation,
    sc.DigitalXRayImageStorageForProcessing,
    sc.ComputedRadiographyImageStorage,
    sc.DigitalMammographyXRayImageStorageForPresentation,
    sc.DigitalMammographyXRayImageStorageForProcessing,
    sc.XRayAngiographicImageStorage,
    sc.EnhancedXAImageStorage,
    sc.XRayRadiofluoroscopicImageStorage,
    sc.EnhancedXRFImageStorage,
    sc.PositronEmissionTomographyImageStorage,
    sc.EnhancedPETImageStorage,
    sc.NuclearMedicineImageStorage,
    sc.SecondaryCaptureImageStorage,
)
NATIVE_SYNTAXES = (
    tsuid.ExplicitVRLittleEndian,
    tsuid.ImplicitVRLittleEndian,
    tsuid.DeflatedExplicitVRLittleEndian,
    tsuid.ExplicitVRBigEndian,
)
# stored as received: the pixel data is never decoded, so no codec is needed
COMPRESSED_SYNTAXES = (
    tsuid.JPEGBaseline8Bit,
    tsuid.JPEGExtended12Bit,
    tsuid.JPEGLossless,
    tsuid.JPEGLosslessSV1,
    tsuid.JPEGLSLossless,
    tsuid.JPEGLSNearLossless,
    tsuid.JPEG2000Lossless,
    tsuid.JPEG2000,
    tsuid.RLELossless,
)

OnStored = Callable[[InboxItem], object]


def add_storage_contexts(ae: AE) -> None:
    """The SCP's supported presentation contexts (SR: native syntaxes; images: also compressed)."""
    ae.add_supported_context(sc.Verification)
    for cls in DOSE_SR_CLASSES:
        ae.add_supported_context(cls, list(NATIVE_SYNTAXES))
    for cls in IMAGE_CLASSES:
        ae.add_supported_context(cls, list(NATIVE_SYNTAXES + COMPRESSED_SYNTAXES))


def set_nodelay(event) -> None:
    """EVT_CONN_OPEN: disable Nagle, which otherwise caps a C-STORE stream at ~20 objects/s."""
    sock = event.assoc.dul.socket.socket
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class StoreHandler:
    """EVT_C_STORE: keep the object in the inbox, hand it on, answer; the one place statuses are chosen."""

    def __init__(self, inbox: Inbox, on_stored: Optional[OnStored] = None):
        self.inbox = inbox
        self.on_stored = on_stored

    def __call__(self, event) -> int:
        req = event.request
        sop_uid = str(req.AffectedSOPInstanceUID or "").strip()
        meta = {
            "calling_ae": event.assoc.remote["ae_title"],  # the sender: also right for C-GET, where we requested
            "transfer_syntax": str(event.context.transfer_syntax),
            "sop_class": str(event.context.abstract_syntax),
        }
        originator = req.MoveOriginatorApplicationEntityTitle  # set when a PACS sends for a C-MOVE
        if originator:
            meta["move_originator"] = str(originator).strip()
        try:
            data = event.encoded_dataset()
            item = self.inbox.put("dicom", data, key=sop_uid or None, meta=meta)
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
    """Association server that runs the TLS handshake in the connection's own thread.

    pynetdicom wraps sockets in the accept loop, where one silent client would
    block every other sender; here a handshake is bounded by the ACSE timeout.
    """

    tls: Optional[ssl.SSLContext] = None
    handshake_timeout: float = 30.0

    def get_request(self):
        sock, address = self.socket.accept()
        return sock, address

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


def configure_ae(ae: AE, settings: Settings) -> AE:
    """Apply the PDU size and ACSE / DIMSE / network timeouts of ``settings``."""
    ae.maximum_pdu_size = settings.dicom_max_pdu
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    return ae


def start_scp(settings: Settings, on_stored: Optional[OnStored] = None, inbox: Optional[Inbox] = None) -> ScpHandle:
    """Start the Storage SCP on ``settings.dicom`` (port 0: a free port) in background threads."""
    ae = configure_ae(AE(ae_title=settings.ae_title), settings)
    ae.maximum_associations = 32
    add_storage_contexts(ae)
    if settings.dicom_allowed_aets:
        ae.require_calling_aet = list(settings.dicom_allowed_aets)  # others: A-ASSOCIATE-RJ (1, 1, 3)
    handlers = [
        (evt.EVT_CONN_OPEN, set_nodelay),
        (evt.EVT_C_ECHO, _echo),
        (evt.EVT_C_STORE, StoreHandler(inbox or Inbox(settings.inbox_dir), on_stored)),
    ]
    server = ae.make_server(tuple(settings.dicom), evt_handlers=handlers, server_class=_Server)
    server.tls = tls_context(settings)
    server.handshake_timeout = settings.dicom_acse_timeout
    thread = threading.Thread(target=server.serve_forever, name=f"dicom-scp-{server.server_address[1]}", daemon=True)
    thread.start()
    ae._servers.append(server)  # so AE.shutdown() reaches it, as for AE.start_server
    return ScpHandle(ae, server, thread)
