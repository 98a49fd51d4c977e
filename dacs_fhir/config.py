"""Settings from the environment (prefix ``DACS_``), see docs/architecture.md."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

from .errors import ConfigurationError


def _hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value or "127.0.0.1", default_port
    return host.strip("[]"), int(port)


def _base_url(value: str) -> str:
    """``DACS_BASE_URL`` as ``scheme://host[:port][/path]`` without a trailing ``/`` or ``/fhir``."""
    value = value.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(f"DACS_BASE_URL must be http(s)://host[:port][/path], not {value!r}")
    return value[: -len("/fhir")] if value.endswith("/fhir") else value


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 when it does not exist; the mode is set
    explicitly, whatever the umask."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


@dataclass
class Settings:
    data_dir: Path = Path("./dacs-data")
    database_url: str = ""
    broker_url: Optional[str] = None
    http: tuple[str, int] = ("127.0.0.1", 8080)
    dicom: tuple[str, int] = ("127.0.0.1", 11112)
    ae_title: str = "DACS"
    mllp: tuple[str, int] = ("127.0.0.1", 2575)
    max_request_bytes: int = 50 * 1024 * 1024
    queue: str = "dacs"  # Celery queue name (one per deployment sharing a broker)
    mllp_tls_cert: str = ""  # PEM certificate (and key) file: the MLLP listener speaks TLS when set
    mllp_tls_key: str = ""
    # MLLP listener limits (a broken or hostile peer): README "Settings"
    mllp_idle_timeout: float = 300.0  # seconds without a byte before a connection is closed (0: never)
    mllp_max_connections: int = 64  # open connections in all; further ones are closed at once
    mllp_max_per_peer: int = 8  # open connections from one address
    mllp_allowed_senders: tuple[str, ...] = ()  # NETWORK, APP^FACILITY or APP^FACILITY@NETWORK; empty: any
    mllp_backlog: int = 128  # listen() backlog
    destinations: tuple[str, ...] = ()  # outbound dose summaries: mllp://host:port, fhir+https://base
    # DICOM SCP / SCU (docs/dicom-conformance.md)
    dicom_allowed_aets: tuple[str, ...] = ()  # calling AE titles accepted by the SCP; empty: any
    dicom_max_pdu: int = 131072  # largest P-DATA PDU we receive (0: unlimited)
    dicom_acse_timeout: float = 10.0  # also: a connection that sends no A-ASSOCIATE-RQ this long is dropped
    dicom_dimse_timeout: float = 60.0
    dicom_network_timeout: float = 60.0  # an association idle this long is aborted
    dicom_tls_cert: str = ""  # PEM server certificate: the SCP speaks DICOM TLS when set
    dicom_tls_key: str = ""
    dicom_tls_ca: str = ""  # PEM CA bundle: when set, clients must present a certificate it signed
    pacs: str = ""  # AET@host:port of the PACS that `dacs-fhir pacs pull` queries
    # HTTP / FHIR REST listener (waitress adjustments; README "Settings")
    base_url: str = ""  # public root URL, e.g. https://dacs.example.org (FHIR base: + /fhir)
    http_threads: int = 8  # worker threads answering requests
    http_channel_timeout: float = 10.0  # s a connection may stay silent before it is closed
    http_cleanup_interval: float = 2.0  # s between sweeps for silent connections
    http_header_timeout: float = 10.0  # s a request's headers may take to arrive, however steadily
    http_connection_limit: int = 500  # open connections; beyond it new ones wait in the backlog
    http_backlog: int = 1024  # listen(2) queue
    http_recv_bytes: int = 8192  # bytes read from a socket at once
    # hostile or broken peers (issue #12 §4): SCP limits, inbox retention (docs/dicom-conformance.md)
    dicom_max_object_bytes: int = 512 * 1024 * 1024  # larger C-STORE data sets: 0xA700
    dicom_max_associations: int = 32  # concurrent associations of the SCP
    dicom_max_associations_per_peer: int = 8  # per calling AE title, and per peer address
    inbox_retention_days: float = 30.0  # done items older than this are purged (0: kept)
    inbox_failed_retention_days: float = 90.0  # failed items (0: kept)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("DACS_DATA_DIR", "./dacs-data"))
        return cls(
            data_dir=data_dir,
            database_url=env.get("DACS_DATABASE_URL") or f"sqlite:///{(data_dir / 'dacs.sqlite').resolve()}",
            broker_url=env.get("DACS_BROKER_URL") or None,
            http=_hostport(env.get("DACS_HTTP", "127.0.0.1:8080"), 8080),
            dicom=_hostport(env.get("DACS_DICOM", "127.0.0.1:11112"), 11112),
            ae_title=env.get("DACS_AE_TITLE", "DACS"),
            mllp=_hostport(env.get("DACS_MLLP", "127.0.0.1:2575"), 2575),
            max_request_bytes=int(env.get("DACS_MAX_REQUEST_BYTES", 50 * 1024 * 1024)),
            queue=env.get("DACS_QUEUE", "dacs"),
            mllp_tls_cert=env.get("DACS_MLLP_TLS_CERT", ""),
            mllp_tls_key=env.get("DACS_MLLP_TLS_KEY", ""),
            mllp_idle_timeout=float(env.get("DACS_MLLP_IDLE_TIMEOUT", 300)),
            mllp_max_connections=int(env.get("DACS_MLLP_MAX_CONNECTIONS", 64)),
            mllp_max_per_peer=int(env.get("DACS_MLLP_MAX_PER_PEER", 8)),
            mllp_allowed_senders=tuple(a.strip() for a in env.get("DACS_MLLP_ALLOWED_SENDERS", "").split(",") if a.strip()),
            mllp_backlog=int(env.get("DACS_MLLP_BACKLOG", 128)),
            destinations=tuple(u.strip() for u in env.get("DACS_DESTINATIONS", "").split(",") if u.strip()),
            dicom_allowed_aets=tuple(a.strip() for a in env.get("DACS_DICOM_ALLOWED_AETS", "").split(",") if a.strip()),
            dicom_max_pdu=int(env.get("DACS_DICOM_MAX_PDU", 131072)),
            dicom_acse_timeout=float(env.get("DACS_DICOM_ACSE_TIMEOUT", 10)),
            dicom_dimse_timeout=float(env.get("DACS_DICOM_DIMSE_TIMEOUT", 60)),
            dicom_network_timeout=float(env.get("DACS_DICOM_NETWORK_TIMEOUT", 60)),
            dicom_tls_cert=env.get("DACS_DICOM_TLS_CERT", ""),
            dicom_tls_key=env.get("DACS_DICOM_TLS_KEY", ""),
            dicom_tls_ca=env.get("DACS_DICOM_TLS_CA", ""),
            pacs=env.get("DACS_PACS", ""),
            base_url=_base_url(env.get("DACS_BASE_URL", "")),
            http_threads=int(env.get("DACS_HTTP_THREADS", 8)),
            http_channel_timeout=float(env.get("DACS_HTTP_CHANNEL_TIMEOUT", 10)),
            http_cleanup_interval=float(env.get("DACS_HTTP_CLEANUP_INTERVAL", 2)),
            http_header_timeout=float(env.get("DACS_HTTP_HEADER_TIMEOUT", 10)),
            http_connection_limit=int(env.get("DACS_HTTP_CONNECTION_LIMIT", 500)),
            http_backlog=int(env.get("DACS_HTTP_BACKLOG", 1024)),
            http_recv_bytes=int(env.get("DACS_HTTP_RECV_BYTES", 8192)),
            dicom_max_object_bytes=int(env.get("DACS_DICOM_MAX_OBJECT_BYTES", 512 * 1024 * 1024)),
            dicom_max_associations=int(env.get("DACS_DICOM_MAX_ASSOCIATIONS", 32)),
            dicom_max_associations_per_peer=int(env.get("DACS_DICOM_MAX_ASSOCIATIONS_PER_PEER", 8)),
            inbox_retention_days=float(env.get("DACS_INBOX_RETENTION_DAYS", 30)),
            inbox_failed_retention_days=float(env.get("DACS_INBOX_FAILED_RETENTION_DAYS", 90)),
        )

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"
