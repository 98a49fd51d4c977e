"""MLLP framing (HL7 v2.5.1 Appendix C, MLLP release 2): ``<VT> message <FS><CR>``.

Used by the MLLP listener (server side) and by outbound delivery and tests (client side).
"""
from __future__ import annotations

import socket
from typing import Iterator

VT, FS, CR = b"\x0b", b"\x1c", b"\x0d"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class FrameTooLarge(OverflowError):
    """A frame grew past the reader's limit; the connection cannot be resynchronised and is closed."""


def frame(payload: bytes) -> bytes:
    """Wrap one message in an MLLP block."""
    return VT + payload + FS + CR


class FrameReader:
    """Incremental MLLP decoder: feed bytes, iterate complete message payloads.

    Bytes outside a frame (stray CR/LF between frames) are skipped; a frame longer than
    ``max_bytes`` raises :class:`FrameTooLarge` as soon as that many bytes are buffered."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
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
                    raise FrameTooLarge(f"MLLP frame larger than {self.max_bytes} bytes")
                return
            payload = bytes(self.buffer[start + 1 : end])
            # the trailing CR is optional in practice (some senders end with FS alone)
            del self.buffer[: end + 2 if self.buffer[end + 1 : end + 2] == CR else end + 1]
            yield payload


def read_frame(sock: socket.socket, reader: FrameReader) -> bytes:
    """Block until one complete frame arrives on ``sock``; ConnectionResetError when the peer closes first.

    Frames already buffered by ``reader`` are not kept past the first: a client waits for one
    reply per message sent (HL7 original mode) and any further bytes are a protocol error."""
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed by peer before a complete MLLP frame")
        for payload in reader.feed(data):
            return payload


def exchange(sock: socket.socket, payload: bytes, reader: FrameReader) -> bytes:
    """Client side: send one message and return the payload of the reply frame (its ACK)."""
    sock.sendall(frame(payload))
    return read_frame(sock, reader)
