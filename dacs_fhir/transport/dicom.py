"""DICOM association set-up shared by the Storage SCP (listeners) and the PACS client (pacs.py):
the SOP classes and transfer syntaxes taken, timeouts, TCP options (PS3.8, PS3.4 Annex B)."""
from __future__ import annotations

import socket

from pydicom import uid as tsuid
from pynetdicom import AE, sop_class as sc

from ..config import Settings

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


def configure_ae(ae: AE, settings: Settings) -> AE:
    """Apply the PDU size and ACSE / DIMSE / network timeouts of ``settings``."""
    ae.maximum_pdu_size = settings.dicom_max_pdu
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    return ae
