"""MLLP framing (HL7 v2.5.1 Appendix C): <VT> message <FS><CR>, split across reads, noise between frames."""
from __future__ import annotations

import pytest

from dacs_fhir.delivery.destinations import DeliveryError, ack_code, control_id_of, parse
from dacs_fhir.transport.mllp import FrameReader, FrameTooLarge, frame


def test_frames_split_anywhere_are_reassembled():
    msgs = [f"MSH|^~\\&|A|B|C|D|||ADT^A01|{i}|P|2.5.1\rPID|||{i}\r".encode() for i in range(50)]
    stream = b"\r\n".join(frame(m) for m in msgs)
    for chunk in (1, 7, 64, len(stream)):
        reader = FrameReader()
        got = [p for i in range(0, len(stream), chunk) for p in reader.feed(stream[i : i + chunk])]
        assert got == msgs


def test_frame_without_trailing_cr_is_accepted():
    reader = FrameReader()
    assert list(reader.feed(b"\x0bMSH|one\x1c\x0bMSH|two\x1c\r")) == [b"MSH|one", b"MSH|two"]


def test_oversized_frame_raises():
    reader = FrameReader(max_bytes=100)
    with pytest.raises(FrameTooLarge, match="larger than 100 bytes"):
        list(reader.feed(b"\x0b" + b"x" * 200))


def test_ack_code_checks_the_control_id():
    ack = b"MSH|^~\\&|R|F|DACS||20240101||ACK^R01^ACK|9|P|2.5.1\rMSA|AE|C7\r"
    assert ack_code(ack, "C7") == "AE"
    with pytest.raises(DeliveryError):
        ack_code(ack, "C8")
    assert control_id_of(b"MSH|^~\\&|DACS||||20240101||ORU^R01^ORU_R01|C7|P|2.5.1\rPID|||1\r") == "C7"


def test_destination_urls():
    d = parse("mllp://127.0.0.1:2576?timeout=3&attempts=4&backoff=0.5")
    assert (d.host, d.port, d.timeout, d.attempts) == ("127.0.0.1", 2576, 3.0, 4)
    assert [d.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    f = parse("fhir+https://ehr.example.org/fhir/")
    assert f.http_url == "https://ehr.example.org:443/fhir" and f.content_type == "application/fhir+json"
    with pytest.raises(ValueError):
        parse("ftp://x")
