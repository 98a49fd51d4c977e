"""ACK building: AA / AE with ERR (location, code, reason) / AR, in the inbound message's version."""
from __future__ import annotations

import hl7
import pytest

from dacs_fhir.hl7v2.ack import acknowledge, build_ack, escape
from dacs_fhir.hl7v2.errors import ContentError, Location, MessageRejected

ADT = b"MSH|^~\\&|RIS|HOSP|DACS|RAD|20240101120000||ADT^A08^ADT_A01|CTRL42|P|2.5.1\rPID|||7^^^X||Doe^Jo\r"


def _fail(exc):
    def apply(_inbound):
        raise exc

    return apply


def test_aa_swaps_sender_and_receiver_and_echoes_control_id():
    ack, inbound, err = acknowledge(ADT, lambda i: None)
    assert err is None
    msg = hl7.parse(ack)
    assert str(msg["MSA.F1"]) == "AA" and str(msg["MSA.F2"]) == "CTRL42"
    assert (str(msg["MSH.F3"]), str(msg["MSH.F5"])) == ("DACS", "RIS")
    assert str(msg["MSH.F9.R1.C1"]) == "ACK" and str(msg["MSH.F9.R1.C2"]) == "A08"
    assert str(msg["MSH.F12"]) == "2.5.1"
    assert str(msg["MSH.F10"]) != "CTRL42" and len(str(msg["MSH.F10"])) <= 20


def test_ae_carries_err_location_code_and_reason():
    err = ContentError("PID-7 is not a valid date", "102", Location("PID", 1, 7, 1, 1))
    ack, _, got = acknowledge(ADT, _fail(err))
    assert got is err
    msg = hl7.parse(ack)
    assert str(msg["MSA.F1"]) == "AE"
    e = msg.segment("ERR")
    assert [str(e(2)(1)(i)) for i in range(1, 4)] == ["PID", "1", "7"]  # ERR-2 ERL
    assert str(e(3)(1)(1)) == "102" and str(e(3)(1)(3)) == "HL70357"  # ERR-3
    assert str(e(4)) == "E"
    assert "PID-7" in str(e(8))


def test_ar_for_unsupported_type():
    err = MessageRejected("unsupported message type ORU", "200", Location("MSH", 1, 9, 1, 1))
    msg = hl7.parse(acknowledge(ADT, _fail(err))[0])
    assert str(msg["MSA.F1"]) == "AR"
    assert str(msg.segment("ERR")(3)(1)(1)) == "200"


def test_unparseable_gets_ar_with_sniffed_control_id():
    msg = hl7.parse(acknowledge(b"MSH|^~\\&|A|B|C|D|||ADT^A01|X9|P|9.9\r", lambda i: None)[0])
    assert str(msg["MSA.F1"]) == "AR" and str(msg["MSA.F2"]) == "X9"


def test_unexpected_exception_becomes_ae_207():
    msg = hl7.parse(acknowledge(ADT, _fail(RuntimeError("boom")))[0])
    assert str(msg["MSA.F1"]) == "AE"
    assert str(msg.segment("ERR")(3)(1)(1)) == "207"
    assert "boom" not in str(msg)


def test_v23_uses_err1():
    raw = ADT.replace(b"|P|2.5.1", b"|P|2.3")
    ack, inbound, _ = acknowledge(raw, _fail(ContentError("PID-3 patient identifier missing", "101", Location("PID", 1, 3))))
    err = hl7.parse(ack).segment("ERR")
    assert str(err(1)(1)(1)) == "PID" and str(err(1)(1)(3)) == "3"
    assert str(err(1)(1)(4)).startswith("101")


@pytest.mark.parametrize("text", ["a|b", "x^y~z&w", "back\\slash"])
def test_escape_round_trips_through_python_hl7(text):
    inbound_ack = build_ack(None, "AE", ContentError(text, "101", Location("PID", 1, 3)))
    msg = hl7.parse(inbound_ack)
    assert msg.unescape(str(msg.segment("ERR")(8))) == text
    assert escape(text).count("|") == 0
