"""The MLLP listener with a stub handler, driven by clients that are not ours (python-hl7)."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from dacs_fhir.hl7v2.ack import acknowledge, encode_ack
from dacs_fhir.listeners.mllp import start_mllp
from dacs_fhir.transport.mllp import frame

pytestmark = pytest.mark.integration


def _ack_everything(raw: bytes) -> bytes:
    ack, inbound, _ = acknowledge(raw, lambda inbound: None)
    return encode_ack(ack, inbound)


@pytest.fixture
def listener():
    received = []

    def handler(raw):
        received.append(raw)
        return _ack_everything(raw)

    handle = start_mllp("127.0.0.1", 0, handler)
    handle.received = received
    yield handle
    handle.stop()


def _msa(ack: bytes) -> tuple[str, str]:
    msg = hl7.parse(ack.strip(b"\x0b\x1c\r").decode("latin-1"))
    return str(msg["MSA.F1"]), str(msg["MSA.F2"])


def _mllp_send() -> str:
    exe = shutil.which("mllp_send") or str(Path(sys.executable).with_name("mllp_send"))
    assert Path(exe).exists(), "python-hl7's mllp_send is missing: python-hl7 is a dependency (setup.cfg)"
    return exe


@pytest.mark.corpus
def test_corpus_messages_sent_with_mllp_send_are_acked_byte_exact(corpus, listener, tmp_path):
    files = sorted((corpus / "hl7v2").glob("*.hl7"))
    stream = tmp_path / "all.mllp"
    stream.write_bytes(b"".join(frame(f.read_bytes()) for f in files))
    out = subprocess.run([_mllp_send(), "--port", str(listener.port), "-f", str(stream), "127.0.0.1"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    # every message arrived once, in order, with its bytes intact (BOM, LF line ends)
    assert len(listener.received) == len(files)
    for f, got in zip(files, listener.received):
        assert got == f.read_bytes().strip(b"\r"), f.name
    acks = out.stdout.split(b"\x1c\r")
    codes = [_msa(a) for a in acks if b"MSA" in a]
    from dacs_fhir.hl7v2 import decode

    assert codes == [("AA", decode(f.read_bytes()).control_id) for f in files]


def test_thousands_of_messages_on_one_persistent_connection(listener):
    n = 2000
    with MLLPClient("127.0.0.1", listener.port) as client:
        for i in range(n):
            ack = client.send_message(f"MSH|^~\\&|RIS|H|DACS|R|20240101||ADT^A08|C{i}|P|2.5.1\rPID|||{i}^^^X\r")
            assert _msa(ack) == ("AA", f"C{i}")
    assert len(listener.received) == n


def test_several_connections_at_once(listener):
    clients = [MLLPClient("127.0.0.1", listener.port) for _ in range(5)]
    try:
        for round_ in range(20):
            for k, c in enumerate(clients):
                assert _msa(c.send_message(f"MSH|^~\\&|A|B|C|D|||ADT^A01|{k}-{round_}|P|2.4\rPID|||1\r")) == ("AA", f"{k}-{round_}")
    finally:
        for c in clients:
            c.close()


def test_garbage_gets_ar_and_the_connection_stays_usable(listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as s:
        s.sendall(b"\r\n" + frame(b"not hl7 at all"))
        assert _msa(s.recv(4096))[0] == "AR"
        s.sendall(frame(b"MSH|^~\\&|A|B|C|D|||ADT^A01|OK1|P|2.5\rPID|||1\r"))
        assert _msa(s.recv(4096)) == ("AA", "OK1")


def test_stop_closes_persistent_connections():
    handle = start_mllp("127.0.0.1", 0, _ack_everything)
    s = socket.create_connection(("127.0.0.1", handle.port), timeout=5)
    s.sendall(frame(b"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|||1\r"))
    assert s.recv(4096)
    handle.stop()
    assert s.recv(4096) == b""
    s.close()


def test_tls(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    from dacs_fhir.listeners.mllp import server_tls_context

    handle = start_mllp("127.0.0.1", 0, _ack_everything, ssl_context=server_tls_context(str(cert), str(key)))
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                for i in range(3):
                    s.sendall(frame(f"MSH|^~\\&|A|B|C|D|||ADT^A01|T{i}|P|2.5\rPID|||1\r".encode()))
                    assert _msa(s.recv(4096)) == ("AA", f"T{i}")
    finally:
        handle.stop()
