"""MLLP listener: persistent TCP (optionally TLS) connections carrying HL7 v2 messages.

Framing (``dacs_fhir.transport.mllp``) is MLLP release 2 (HL7 v2.5.1 Appendix C).
Real feeds keep one connection open for thousands of messages and wait for each
ACK before sending the next, so each connection is served by its own thread that
reads frames in a loop and answers every frame with the handler's reply.
Against broken or hostile peers: connections are capped in all and per address
(the extra ones are closed at once), a connection silent for the idle timeout is
closed, and a frame over the size limit is answered AR and the connection closed.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from ..transport.mllp import DEFAULT_MAX_BYTES, FrameReader, FrameTooLarge, frame

if TYPE_CHECKING:
    from ..hl7v2.receiver import Receiver

log = logging.getLogger(__name__)

Handler = Callable[..., bytes]  # handler(payload) -> reply, or handler(payload, peer_address) with with_peer


@dataclass(frozen=True)
class Limits:
    """What one listener grants its peers (settings ``DACS_MLLP_*``, README "Settings")."""

    max_bytes: int = DEFAULT_MAX_BYTES  # largest frame
    idle_timeout: float = 300.0  # seconds without a byte before a connection is closed; 0: never
    max_connections: int = 64
    max_per_peer: int = 8
    backlog: int = 128

    @classmethod
    def from_settings(cls, s) -> "Limits":
        return cls(s.max_request_bytes, s.mllp_idle_timeout, s.mllp_max_connections, s.mllp_max_per_peer, s.mllp_backlog)


class _Connection(socketserver.BaseRequestHandler):
    server: "_Server"

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.limits.idle_timeout:
            self.request.settimeout(self.server.limits.idle_timeout)  # also bounds a TLS handshake
        self.raw_socket = self.request  # what stop() shuts down, TLS or not
        self.server.track(self.raw_socket, True)
        if self.server.ssl_context is not None:
            try:
                self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
            except BaseException:
                self.server.track(self.raw_socket, False)  # finish() does not run when setup() fails
                raise

    def handle(self) -> None:
        reader = FrameReader(self.server.limits.max_bytes)
        sock, peer = self.request, self.client_address[0]
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                log.info("MLLP connection from %s closed: idle for %g s", peer, self.server.limits.idle_timeout)
                return
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            try:
                for payload in reader.feed(data):
                    reply = self.server.reply(payload, peer)
                    if reply:  # enhanced mode may ask for no acknowledgment (MSH-15 NE / ER / SU)
                        sock.sendall(frame(reply))
            except FrameTooLarge as exc:
                log.warning("MLLP connection from %s closed: %s", peer, exc)
                self._refuse(bytes(reader.buffer[1:4097]), str(exc))
                return
            except OSError:
                return

    def _refuse(self, head: bytes, reason: str) -> None:
        """Answer AR for a frame over the limit (its MSH-10 read from the first bytes), then close: the
        rest of the frame is read and dropped for a moment so that the close does not reset the reply."""
        from ..hl7v2.ack import build_ack, encode_ack
        from ..hl7v2.errors import APPLICATION_INTERNAL_ERROR, MessageRejected

        err = MessageRejected(reason, APPLICATION_INTERNAL_ERROR)
        sock = self.request
        try:
            sock.sendall(frame(encode_ack(build_ack(None, "AR", err, raw=head), None)))
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.5)
            end = time.monotonic() + 2
            while time.monotonic() < end and sock.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass

    def finish(self) -> None:
        self.server.track(self.raw_socket, False)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler: Handler, ssl_context: Optional[ssl.SSLContext], limits: Limits, with_peer: bool = False):
        self.handler = handler
        self.with_peer = with_peer
        self.ssl_context = ssl_context
        self.limits = limits
        self.request_queue_size = max(limits.backlog, 1)  # listen() backlog (socketserver's default is 5)
        self.connections: set = set()
        self.open_by_peer: Counter = Counter()
        self._conn_lock = threading.Lock()
        super().__init__(addr, _Connection)

    # ---- connection caps: checked on the accepting thread, before a connection thread is started
    def verify_request(self, request, client_address) -> bool:
        peer = client_address[0]
        with self._conn_lock:
            total, mine = sum(self.open_by_peer.values()), self.open_by_peer[peer]
            if total >= self.limits.max_connections or mine >= self.limits.max_per_peer:
                refused = (f"{total} open in all (limit {self.limits.max_connections})" if total >= self.limits.max_connections
                           else f"{mine} open from this address (limit {self.limits.max_per_peer})")
            else:
                self.open_by_peer[peer] += 1
                return True
        log.warning("MLLP connection from %s refused: %s", peer, refused)
        return False

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self.open_by_peer[client_address[0]] -= 1
                if self.open_by_peer[client_address[0]] <= 0:
                    del self.open_by_peer[client_address[0]]

    def handle_error(self, request, client_address) -> None:
        """A connection that failed outside the handler (a TLS handshake): one line, no traceback."""
        import sys

        log.warning("MLLP connection from %s failed: %s", client_address[0], type(sys.exc_info()[1]).__name__)

    def track(self, sock, add: bool) -> None:
        with self._conn_lock:
            (self.connections.add if add else self.connections.discard)(sock)

    def reply(self, payload: bytes, peer: str) -> bytes:
        try:
            return self.handler(payload, peer) if self.with_peer else self.handler(payload)
        except Exception:  # noqa: BLE001 - a sender waits for an ACK: answer AE, keep the connection
            log.exception("MLLP handler failed")
            from ..hl7v2.ack import build_ack, encode_ack
            from ..hl7v2.errors import APPLICATION_INTERNAL_ERROR, Hl7Error

            return encode_ack(build_ack(None, "AE", Hl7Error("internal error", APPLICATION_INTERNAL_ERROR), raw=payload), None)

    def close_connections(self) -> None:
        with self._conn_lock:
            socks = list(self.connections)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class MllpHandle:
    """A running listener: ``.host``, ``.port`` (the real one when 0 was asked), ``.stop()``."""

    def __init__(self, server: _Server, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.host, self.port = server.server_address[:2]
        self.receiver: Optional[Receiver] = None  # the HL7 receiver, for start_mllp_for

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_connections()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_mllp(
    settings_or_host,
    port: Optional[int] = None,
    handler: Optional[Handler] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    max_bytes: Optional[int] = None,
    limits: Optional[Limits] = None,
    with_peer: bool = False,
) -> MllpHandle:
    """Start a listener on ``host:port`` (port 0 picks a free one) calling ``handler(payload) -> reply``
    (``handler(payload, peer_address)`` when ``with_peer``).

    ``settings_or_host`` is a Settings (host/port from ``settings.mllp``, TLS from
    ``mllp_tls_cert``/``mllp_tls_key``, limits from ``max_request_bytes`` and ``mllp_*``) or a host name.
    """
    if handler is None:
        raise TypeError("start_mllp needs a handler")
    if isinstance(settings_or_host, str):
        host, port = settings_or_host, int(port or 0)
        limits = limits or Limits()
    else:
        s = settings_or_host
        host, port = s.mllp[0], s.mllp[1] if port is None else port
        limits = limits or Limits.from_settings(s)
        cert = getattr(s, "mllp_tls_cert", "")
        if ssl_context is None and cert:
            ssl_context = server_tls_context(s.mllp_tls_cert, s.mllp_tls_key or None)
    if max_bytes:
        limits = Limits(max_bytes, limits.idle_timeout, limits.max_connections, limits.max_per_peer, limits.backlog)
    server = _Server((host, port), handler, ssl_context, limits, with_peer)
    thread = threading.Thread(target=server.serve_forever, name=f"mllp-{server.server_address[1]}", daemon=True)
    thread.start()
    return MllpHandle(server, thread)


def server_tls_context(certfile: str, keyfile: Optional[str] = None) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) for the listener."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def start_mllp_for(settings, pipeline) -> MllpHandle:
    """The HL7 v2 listener of ``dacs-fhir serve``: inbound messages applied through the pipeline."""
    from ..hl7v2.receiver import Receiver

    receiver = Receiver(pipeline)
    # messages committed (enhanced mode) but not applied before a stop are applied first, in order
    threading.Thread(target=receiver.recover_pending, name="hl7-recover", daemon=True).start()
    handle = start_mllp(settings, None, receiver.handle, with_peer=True)
    handle.receiver = receiver
    return handle
