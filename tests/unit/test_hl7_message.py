"""Decoding inbound HL7 v2 as real feeds send it (python-hl7 parse path)."""
from __future__ import annotations

import json

import pytest

from dacs_fhir.hl7v2 import decode
from dacs_fhir.hl7v2.errors import MessageRejected

pytestmark = pytest.mark.corpus


def _truth(corpus):
    files = json.loads((corpus / "ground_truth.json").read_text())["files"]
    return {f["name"]: f["hl7"] for f in files if f.get("category") == "hl7v2"}


def test_corpus_headers_match_ground_truth(corpus):
    truth = _truth(corpus)
    assert truth, "no hl7v2 entries in ground truth"
    for name, gt in truth.items():
        inb = decode((corpus / "hl7v2" / name).read_bytes())
        assert inb.value("MSH", 3) == gt["MSH-3 sending app"], name
        assert inb.control_id == gt["MSH-10 control id"], name
        assert inb.version == gt["MSH-12 version"], name
        code, trigger = gt["MSH-9 message type"].split("^")[:2]
        assert (inb.message_code, inb.trigger) == (code, trigger), name
        assert [str(s[0]) for s in inb.msg] == gt["segments"], name
        assert inb.value("PID", 8) == gt["PID-8 sex"].split("^")[0], name
        assert ("bom" in inb.notes) == gt["UTF-8 BOM"], name
        assert ("lf" in inb.notes) == (gt["line terminator"] == "LF"), name


def test_msh18_latin1_is_decoded_as_latin1():
    raw = "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5.1||||||8859/1\rPID|||7^^^X||Müller^Jürgen\r".encode("latin-1")
    inb = decode(raw)
    assert inb.encoding == "latin-1"
    assert inb.value("PID", 5, 1, 1) == "Müller"


def test_utf8_bom_and_crlf():
    raw = "\ufeffMSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5.1\r\nPID|||7^^^X||Łukasz^Ądam\r\n".encode("utf-8")
    inb = decode(raw)
    assert inb.value("PID", 5, 1, 1) == "Łukasz"
    assert {"bom", "lf"} <= set(inb.notes)


def test_mislabelled_charset_falls_back():
    raw = "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5.1||||||UNICODE UTF-8\rPID|||7||Gr\xfcn\r".encode("latin-1")
    inb = decode(raw)
    assert inb.value("PID", 5) == "Grün"
    assert any(n.startswith("charset-fallback") for n in inb.notes)


def test_escape_sequences_repetitions_and_z_segments():
    raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.3\rPID|||1^^^X~2^^^Y||O\\T\\Brien^Ann\\S\\Marie\rZPI|custom|value\r"
    inb = decode(raw)
    pid = inb.segment("PID")
    assert inb.repetitions(pid, 3) == 2
    assert inb.value(pid, 3, 2, 4) == "Y"
    assert inb.value(pid, 5, 1, 1) == "O&Brien"
    assert inb.value(pid, 5, 1, 2) == "Ann^Marie"
    assert inb.value("ZPI", 2) == "value"


def test_trigger_from_evn_when_msh9_has_only_the_code():
    inb = decode(b"MSH|^~\\&|A|B|C|D|||ADT|9|P|2.2\rEVN|A08|20240101\rPID|||1\r")
    assert inb.message_type == "ADT^A08"


@pytest.mark.parametrize("raw", [b"", b"hello world", b"PID|||1\r", b"MSH|"])
def test_not_hl7_is_rejected(raw):
    with pytest.raises(MessageRejected) as info:
        decode(raw)
    assert info.value.ack_code == "AR"


def test_version_other_than_2x_is_rejected():
    with pytest.raises(MessageRejected) as info:
        decode(b"MSH|^~\\&|A|B|C|D|||ADT^A01|9|P|3.0\rPID|||1\r")
    assert info.value.code == "203"
    assert info.value.location.field == 12
