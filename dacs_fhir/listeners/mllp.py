"""MLLP listener: persistent TCP (optionally TLS) connections carrying HL7 v2 messages.

Framing is MLLP release 2 (HL7 v2.5.1 Appendix C): ``<VT> message <FS><CR>``.
Real feeds keep one connection open for thousands of messages and wait for each
ACK before sending the next, so each connection is served by its own thread that
reads frames in a loop and answers every frame with the handler's reply. Bytes
outside a frame (stray CR/LF between frames) are skipped; a frame larger than
the limit closes the connection.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from typing import Callable, Iterator, Optional

log = logging.getLogger(__name__)

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
Handler = Callable[[bytes], bytes]


def frame(payload: bytes) -> bytes:
    """Wrap one message in an MLLP block."""
    return VT + payload + FS + CR


class FrameReader:
    """Incremental MLLP decoder: feed bytes, iterate complete message payloads."""

    def __init__(self, max_bytes: int = 50 * 1024 * 1024):
        self.buffer = bytearray()
        self.max_bytes = max_bytes

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buffer += data
        while True:
            start = self.buffer.find(VT)
            if start < 0:
                self.buffer.clear()  # nothing but inter-frame noise
                return
            end = self.buffer.find(FS, start + 1)
            if end < 0:
                if start:
                    del self.buffer[:start]
                if len(self.buffer) > self.max_bytes:
                    raise OverflowError(f"MLLP frame larger than {self.max_bytes} bytes")
                return
            payload = bytes(self.buffer[start + 1 : end])
            # the trailing CR is optional in practice (some senders end with FS alone)
            del self.buffer[: end + 2 if self.buffer[end + 1 : end + 2] == CR else end + 1]
            yield payload


class _Connection(socketserver.BaseRequestHandler):
    server: "_Server"

    def setup(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.ssl_context is not None:
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        self.server.track(self.request, True)

    def handle(self) -> None:
        reader = FrameReader(self.server.max_bytes)
        sock = self.request
        while True:
            try:
                data = sock.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            try:
                for payload in reader.feed(data):
                    reply = self.server.reply(payload)
                    if reply:  # enhanced mode may ask for no acknowledgment (MSH-15 NE / ER / SU)
                        sock.sendall(frame(reply))
            except OverflowError as exc:
                log.warning("MLLP connection from %s closed: %s", self.client_address[0], exc)
                return
            except OSError:
                return

    def finish(self) -> None:
        self.server.track(self.request, False)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler: Handler, ssl_context: Optional[ssl.SSLContext], max_bytes: int):
        self.handler = handler
        self.ssl_context = ssl_context
        self.max_bytes = max_bytes
        self.connections: set = set()
        self._conn_lock = threading.Lock()
        super().__init__(addr, _Connection)

    def track(self, sock, add: bool) -> None:
        with self._conn_lock:
            (self.connections.add if add else self.connections.discard)(sock)

    def reply(self, payload: bytes) -> bytes:
        try:
            return self.handler(payload)
        except Exception:  # noqa: BLE001 - a sender waits for an ACK: answer AE, keep the connection
            log.exception("MLLP handler failed")
            from ..hl7v2.ack import encode_ack, build_ack
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

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.thread.join(timeout=5)


def start_mllp(
    settings_or_host,
    port: Optional[int] = None,
    handler: Optional[Handler] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    max_bytes: Optional[int] = None,
) -> MllpHandle:
    """Start a listener on ``host:port`` (port 0 picks a free one) calling ``handler(payload) -> reply``.

    ``settings_or_host`` is a Settings (host/port from ``settings.mllp``, TLS from
    ``mllp_tls_cert``/``mllp_tls_key``, size limit from ``max_request_bytes``) or a host name.
    """
    if handler is None:
        raise TypeError("start_mllp needs a handler")
    if isinstance(settings_or_host, str):
        host, port = settings_or_host, int(port or 0)
        limit = max_bytes or 50 * 1024 * 1024
    else:
        s = settings_or_host
        host, port = s.mllp[0], s.mllp[1] if port is None else port
        limit = max_bytes or s.max_request_bytes
        if ssl_context is None and getattr(s, "mllp_tls_cert", ""):
            ssl_context = server_tls_context(s.mllp_tls_cert, s.mllp_tls_key or None)
    server = _Server((host, port), handler, ssl_context, limit)
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
    """The HL7 v2 listener of ``dacs-fhir serve``: inbound messages applied through the pipeline's store."""
    from ..hl7v2.receiver import Receiver

    receiver = Receiver(pipeline.store, pipeline.inbox)
    # messages committed (enhanced mode) but not applied before a stop are applied first, in order
    threading.Thread(target=receiver.recover_pending, name="hl7-recover", daemon=True).start()
    handle = start_mllp(settings, None, receiver.handle)
    handle.receiver = receiver
    return handle
