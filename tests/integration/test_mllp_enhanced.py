"""HL7 v2.5.1 §2.9.3 enhanced acknowledgment mode: a commit ACK once the message is kept durably,
the message applied in the background, in order."""
from __future__ import annotations

import socket
import time

import hl7
from hl7.client import MLLPClient

from dacs_fhir.hl7v2.receiver import Receiver
from dacs_fhir.inbox import Inbox
from dacs_fhir.listeners.mllp import start_mllp
from dacs_fhir.composition import build_pipeline


def adt(n: int, accept: str, app: str = "NE", msg_type: str = "ADT^A08", patient: int | None = None) -> bytes:
    return (f"MSH|^~\\&|RIS|HOSP|DACS|RAD|20240101120000||{msg_type}|E{n}|P|2.5.1|||{accept}|{app}\r"
            f"PID|1||{7000 + (n if patient is None else patient)}^^^HOSP^MR||Enhanced^Ann{n}||19700101|F\r").encode()


def _patients(store) -> dict[str, tuple[str, str]]:
    """MRN -> (version, given name)."""
    with store.transaction() as tx:
        found = tx.search("Patient", [("family", "Enhanced")], count=500).resources
    return {p["identifier"][0]["value"]: (p["meta"]["versionId"], p["name"][0]["given"][0]) for p in found}


def _receiver(settings, store, tmp_path) -> Receiver:
    return Receiver(build_pipeline(settings, store=store, inbox=Inbox(tmp_path / "inbox")))


def test_commit_accept_then_applied_in_order(settings, store, tmp_path):
    receiver = _receiver(settings, store, tmp_path)
    handle = start_mllp("127.0.0.1", 0, receiver.handle)
    try:
        with MLLPClient("127.0.0.1", handle.port) as client:
            acks = [hl7.parse(client.send_message(adt(n, "AL", patient=n % 5)).decode()) for n in range(20)]
            refused = hl7.parse(client.send_message(adt(99, "AL", msg_type="SIU^S12")).decode())
        assert {str(a.segment("MSA")[1]) for a in acks} == {"CA"}
        assert str(refused.segment("MSA")[1]) == "CR" and refused.segment("ERR") is not None
        receiver.drain(60)
        patients = _patients(store)
        assert sorted(patients) == [str(7000 + k) for k in range(5)]
        # each patient written 4 times, in the order sent: the last message's name stands
        assert patients == {str(7000 + k): ("4", f"Ann{15 + k}") for k in range(5)}
        done = [i for i in receiver.inbox.list(kind="hl7v2") if i.status == "done"]
        assert len(done) == 20
    finally:
        handle.stop()


def test_accept_never_sends_no_ack_and_still_applies(settings, store, tmp_path):
    receiver = _receiver(settings, store, tmp_path)
    handle = start_mllp("127.0.0.1", 0, receiver.handle)
    try:
        with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as sock:
            for n in (40, 41):
                sock.sendall(b"\x0b" + adt(n, "NE") + b"\x1c\x0d")
            sock.settimeout(0.5)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                data = b""
        assert data == b""
        receiver.drain(60)
        end = time.monotonic() + 10
        while len(_patients(store)) < 2 and time.monotonic() < end:
            time.sleep(0.1)
        assert {"7040", "7041"} <= set(_patients(store))
    finally:
        handle.stop()


def test_committed_messages_left_unapplied_are_recovered(settings, store, tmp_path):
    crashed = Inbox(tmp_path / "inbox").journal("hl7v2")
    crashed.append(adt(60, "AL"), {"type": "ADT^A08", "control_id": "E60", "accept": "AL"}, durable=True)  # CA sent, then a crash
    crashed.append(adt(61, ""), {"type": "ADT^A08", "control_id": "E61"})  # original mode: no AA left, the sender resends it
    receiver = _receiver(settings, store, tmp_path)
    assert receiver.recover_pending() == 1
    receiver.drain(60)
    assert "7060" in _patients(store) and "7061" not in _patients(store)
    assert receiver.recover_pending() == 0
