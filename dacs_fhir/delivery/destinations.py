"""Outbound destinations by URL: ``mllp://host:port`` (``mllps://`` for TLS) and ``fhir+http(s)://base``.

Query parameters tune the queue: ``timeout`` (seconds to wait for the ACK /
response, default 30), ``attempts`` (failures before a message is parked,
default 10), ``backoff`` (first retry delay, default 2 s, doubled each time) and
``backoff_max`` (default 300 s). A sender returns normally when the peer
accepted the message and raises :class:`DeliveryError` otherwise.
"""
from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..transport.mllp import FrameReader, frame

HL7_V2 = "application/hl7-v2"
FHIR_JSON = "application/fhir+json"


class DeliveryError(Exception):
    """The peer did not accept the message; ``permanent`` means resending it unchanged cannot help."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str
    port: int
    path: str = ""
    timeout: float = 30.0
    attempts: int = 10
    backoff: float = 2.0
    backoff_max: float = 300.0

    @property
    def content_type(self) -> str:
        return HL7_V2 if self.scheme in ("mllp", "mllps") else FHIR_JSON

    def retry_delay(self, attempts: int) -> float:
        """Exponential backoff after ``attempts`` failures."""
        return min(self.backoff * (2 ** max(attempts - 1, 0)), self.backoff_max)

    @property
    def http_url(self) -> str:
        scheme = self.scheme.split("+", 1)[1]
        return urlunsplit((scheme, f"{self.host}:{self.port}", self.path or "/", "", ""))


def parse(url: str) -> Destination:
    """A :class:`Destination` from its URL (ValueError for an unknown scheme)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mllp", "mllps", "fhir+http", "fhir+https"):
        raise ValueError(f"unsupported destination scheme {scheme!r} (mllp, mllps, fhir+http, fhir+https)")
    if not parts.hostname:
        raise ValueError(f"destination {url!r} has no host")
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    default_port = {"mllp": 2575, "mllps": 2575, "fhir+http": 80, "fhir+https": 443}[scheme]
    return Destination(
        url=url,
        scheme=scheme,
        host=parts.hostname,
        port=parts.port or default_port,
        path=parts.path.rstrip("/"),
        timeout=float(q.get("timeout", 30)),
        attempts=int(q.get("attempts", 10)),
        backoff=float(q.get("backoff", 2)),
        backoff_max=float(q.get("backoff_max", 300)),
    )


def ack_code(ack: bytes, control_id: str) -> str:
    """MSA-1 of an ACK that answers ``control_id`` (HL7 v2.5.1 §2.14.8); DeliveryError when it does not."""
    text = ack.decode("latin-1").replace("\n", "\r")
    fs = text[3:4] if text.startswith("MSH") else "|"
    for seg in text.split("\r"):
        if seg.startswith("MSA"):
            fields = seg.split(fs)
            code = fields[1].strip().upper() if len(fields) > 1 else ""
            answered = fields[2].strip() if len(fields) > 2 else ""
            if control_id and answered and answered != control_id:
                raise DeliveryError(f"ACK answers control id {answered[:20]!r}, not the message sent")
            return code
    raise DeliveryError("reply without MSA segment")


def control_id_of(payload: bytes) -> str:
    first = payload.split(b"\r", 1)[0].decode("latin-1")
    fields = first.split(first[3:4] or "|")
    return fields[9] if len(fields) > 9 else ""


class MllpSender:
    """One persistent MLLP connection to a destination; any error closes it (no late ACK is ever misread)."""

    def __init__(self, dest: Destination, ssl_context: Optional[ssl.SSLContext] = None):
        self.dest = dest
        self.ssl_context = ssl_context
        self.sock: Optional[socket.socket] = None
        self.reader = FrameReader()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.dest.host, self.dest.port), timeout=self.dest.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.dest.scheme == "mllps":
            ctx = self.ssl_context or ssl.create_default_context()
            sock = ctx.wrap_socket(sock, server_hostname=self.dest.host)
        self.reader = FrameReader()
        return sock

    def send(self, payload: bytes) -> None:
        try:
            if self.sock is None:
                self.sock = self._connect()
            self.sock.sendall(frame(payload))
            reply = self._read_frame()
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise DeliveryError(f"connection to {self.dest.host}:{self.dest.port} failed: {type(exc).__name__}") from None
        try:
            code = ack_code(reply, control_id_of(payload))
        except DeliveryError:
            self.close()
            raise
        if code not in ("AA", "CA"):
            raise DeliveryError(f"peer answered {code or 'no code'}")

    def _read_frame(self) -> bytes:
        assert self.sock is not None  # connected by send()
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("closed by peer before the ACK")
            for payload in self.reader.feed(data):
                return payload

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class FhirSender:
    """POSTs a transaction Bundle to a FHIR base; 2xx accepted, 408/429/5xx retried, other 4xx permanent."""

    def __init__(self, dest: Destination):
        self.dest = dest

    def send(self, payload: bytes) -> None:
        req = urllib.request.Request(
            self.dest.http_url, data=payload, method="POST", headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.dest.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise DeliveryError(f"FHIR server answered HTTP {exc.code}", permanent=permanent) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"FHIR server unreachable: {type(exc).__name__}") from None
        try:
            kind = json.loads(body).get("type", "")
        except (ValueError, AttributeError):
            kind = ""
        if kind and kind not in ("transaction-response", "batch-response"):
            raise DeliveryError(f"FHIR server answered a {kind[:30]} Bundle")

    def close(self) -> None:
        pass


def sender_for(dest: Destination):
    return MllpSender(dest) if dest.content_type == HL7_V2 else FhirSender(dest)
