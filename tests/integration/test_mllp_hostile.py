"""The MLLP listener against what a hostile or broken peer sends, over real sockets to the real listener:
idle connections, too many connections, senders not on the allow-list, oversized frames. Each checks
the answer and that what was stored before is unchanged."""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

import pytest
from peers import closed_by_server, wait_until

from dacs_fhir.composition import build_pipeline
from dacs_fhir.inbox import FAILED, Inbox
from dacs_fhir.listeners.mllp import start_mllp_for
from dacs_fhir.transport.mllp import FrameReader, exchange, frame, read_frame

pytestmark = pytest.mark.integration
NAME = "Hostile-Kept"  # a name that must never reach a log line


def adt(cid: str, mrn: str = "HK1", family: str = NAME, app: str = "RIS", facility: str = "HOSP", accept: str = "") -> bytes:
    return (f"MSH|^~\\&|{app}|{facility}|DACS|RAD|20240301101500||ADT^A08^ADT_A01|{cid}|P|2.5.1|||{accept}\r"
            f"PID|1||{mrn}^^^HOSP^MR||{family}^Ann||19700101|F\r").encode()


@pytest.fixture
def listener(settings, store):
    """Starts the listener of ``serve`` with the limits a test sets, after one good message was stored."""
    handles = []

    def start(**limits):
        for key, value in limits.items():
            setattr(settings, key, value)
        pipeline = build_pipeline(settings, store=store, inbox=Inbox(settings.inbox_dir))
        handle = start_mllp_for(settings, pipeline)
        handles.append(handle)
        with _connect(handle.port) as sock:
            assert _msa(exchange(sock, adt("K0"), FrameReader())) == "AA"
        # the server counts that connection until its thread has seen it close: start each test at 0
        assert wait_until(lambda: not handle.server.open_by_peer, timeout=5)
        handle.before = _stored(store)
        handle.store = store
        return handle

    yield start
    for handle in handles:
        handle.stop()


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def _msa(ack: bytes) -> str:
    return next(s for s in ack.decode("latin-1").split("\r") if s.startswith("MSA")).split("|")[1]


def _err3(ack: bytes) -> str:
    return next(s for s in ack.decode("latin-1").split("\r") if s.startswith("ERR")).split("|")[3].split("^")[0]


def _stored(store) -> list[tuple]:
    """Every Patient with its version and name: what a bad input must leave as it was."""
    with store.transaction() as tx:
        found = tx.search("Patient", [], count=100).resources
    return sorted((p["id"], p["meta"]["versionId"], p["name"][0]["family"]) for p in found)


def test_idle_connection_is_closed(listener):
    handle = listener(mllp_idle_timeout=0.5)
    with _connect(handle.port) as idle, _connect(handle.port) as half:
        half.sendall(b"\x0b" + adt("K1", family="Never")[:40])  # half a frame, then silence
        t = time.monotonic()
        assert closed_by_server(idle, 5) and closed_by_server(half, 5)
        assert time.monotonic() - t < 4
    assert _stored(handle.store) == handle.before
    with _connect(handle.port) as sock:  # the listener still serves
        assert _msa(exchange(sock, adt("K2", mrn="HK2", family="Other"), FrameReader())) == "AA"


def test_connections_over_the_per_peer_cap_are_closed_at_once(listener, caplog):
    handle = listener(mllp_max_per_peer=2, mllp_max_connections=10, mllp_idle_timeout=30)
    caplog.set_level(logging.INFO, "dacs_fhir")
    held = [_connect(handle.port) for _ in range(2)]
    try:
        for sock in held:  # both served
            assert _msa(exchange(sock, adt("K3"), FrameReader())) == "AA"
        extra = _connect(handle.port)
        t = time.monotonic()
        assert closed_by_server(extra, 5) and time.monotonic() - t < 2
        extra.close()
        other = _connect(handle.port, source="127.0.0.2")  # another address has its own share
        assert _msa(exchange(other, adt("K4", mrn="HK4", family="Second"), FrameReader())) == "AA"
        other.close()
    finally:
        for sock in held:
            sock.close()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "127.0.0.1" in refused[0] and "limit 2" in refused[0]
    assert not any(NAME in r.getMessage() for r in caplog.records)
    # the closed ones are released: a new connection is served again
    assert wait_until(lambda: not handle.server.open_by_peer, timeout=5)
    with _connect(handle.port) as sock:
        assert _msa(exchange(sock, adt("K5"), FrameReader())) == "AA"


def test_connections_over_the_total_cap_are_closed_at_once(listener):
    handle = listener(mllp_max_per_peer=2, mllp_max_connections=3, mllp_idle_timeout=30)
    held = [_connect(handle.port, "127.0.0.2"), _connect(handle.port, "127.0.0.2"), _connect(handle.port, "127.0.0.3")]
    try:
        for sock in held:
            assert _msa(exchange(sock, adt("K6"), FrameReader())) == "AA"
        with _connect(handle.port, "127.0.0.4") as extra:
            assert closed_by_server(extra, 5)
    finally:
        for sock in held:
            sock.close()
    assert _stored(handle.store) == handle.before


def test_sender_not_allowed_gets_ar_and_is_kept(listener):
    handle = listener(mllp_allowed_senders=("RIS^HOSP@127.0.0.1",))  # the fixture's good message is RIS^HOSP
    inbox = handle.receiver.inbox
    with _connect(handle.port) as sock:
        reader = FrameReader()
        ack = exchange(sock, adt("X1", family="Intruder", app="EVIL"), reader)
        assert _msa(ack) == "AR" and _err3(ack) == "207"  # HL7 v2.5.1 table 0357 (see hl7v2.errors.SenderRefused)
    with _connect(handle.port, source="127.0.0.2") as sock:  # allowed names from an address not allowed
        reader = FrameReader()
        assert _msa(exchange(sock, adt("X2", family="Intruder"), reader)) == "AR"
        ack = exchange(sock, adt("X3", family="Intruder", accept="AL"), reader)  # enhanced mode: commit reject
        assert _msa(ack) == "CR" and _err3(ack) == "207"
    assert _stored(handle.store) == handle.before
    failed = {i.meta.get("control_id"): i for i in inbox.list(status=FAILED, kind="hl7v2")}
    assert set(failed) == {"X1", "X2", "X3"}  # every refused message is kept raw, replayable after a review
    assert b"EVIL" in inbox.read(failed["X1"].id)
    with _connect(handle.port) as sock:
        assert _msa(exchange(sock, adt("X4", mrn="HK9", family="Allowed"), FrameReader())) == "AA"


def test_oversized_frame_is_answered_ar_and_closed(listener):
    handle = listener(max_request_bytes=64 * 1024)
    big = adt("B1", family="Huge") + b"NTE|1||" + b"x" * (200 * 1024) + b"\r"
    with _connect(handle.port) as sock:
        reader = FrameReader()
        try:
            sock.sendall(frame(big))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the whole frame is sent; its answer is still there
        ack = read_frame(sock, reader)
        assert _msa(ack) == "AR" and b"MSA|AR|B1" in ack and b"larger than 65536 bytes" in ack
        assert closed_by_server(sock, 5)
    assert _stored(handle.store) == handle.before
    with _connect(handle.port) as sock:
        assert _msa(exchange(sock, adt("B2"), FrameReader())) == "AA"


def test_listen_backlog_is_the_setting():
    """``ss`` shows a listening socket's backlog in Send-Q (socketserver's default is 5)."""
    from dacs_fhir.config import Settings
    from dacs_fhir.listeners.mllp import start_mllp

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed: cannot read the listen backlog")
    settings = Settings.from_env({"DACS_MLLP": "127.0.0.1:0", "DACS_MLLP_BACKLOG": "200"})
    handle = start_mllp(settings, None, lambda raw: b"")
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{handle.port}"], capture_output=True, text=True, check=True).stdout
        assert out.split()[2] == "200", out
    finally:
        handle.stop()
