"""Inbound HL7 v2 end to end: corpus messages sent with python-hl7's client to the listener, applied to the store."""
from __future__ import annotations

import hl7
import pytest
from hl7.client import MLLPClient

from dacs_fhir import store as store_mod
from dacs_fhir.hl7v2 import decode
from dacs_fhir.hl7v2.receiver import Receiver
from dacs_fhir.inbox import DONE, FAILED, Inbox
from dacs_fhir.listeners.mllp import start_mllp
from dacs_fhir.composition import build_pipeline

pytestmark = pytest.mark.integration

EXPECTED_ACK = {
    "adt-a01-fhirconverter-01.hl7": "AA",
    "adt-a04-fhirconverter-01.hl7": "AA",
    "adt-a08-dcm4che-mesa.hl7": "AA",
    "adt-a31-dcm4che-update-person.hl7": "AA",
    "adt-a40-dcm4che-patient-merge.hl7": "AA",
    "omi-o23-dcm4che-imaging-order.hl7": "AA",
    "orm-o01-dcm4che-mesa.hl7": "AA",
    "orm-o01-fhirconverter-ct-head.hl7": "AE",  # no accession number (OBR-18 / IPC-1)
    "oru-r01-dcm4che-sr-report.hl7": "AR",  # results are not accepted inbound
}


@pytest.fixture
def server(settings, store):
    receiver = Receiver(build_pipeline(settings, store=store, inbox=Inbox(settings.inbox_dir)))
    handle = start_mllp("127.0.0.1", 0, receiver.handle)
    handle.receiver, handle.store = receiver, store
    yield handle
    handle.stop()


def _ack(reply: bytes) -> hl7.Message:
    return hl7.parse(reply.strip(b"\x0b\x1c\r").decode("latin-1"))


def _search(store, rtype, params):
    with store.transaction() as tx:
        return tx.search(rtype, params).resources


def _send(port, raw: bytes) -> hl7.Message:
    with MLLPClient("127.0.0.1", port) as client:
        return _ack(client.send_message(raw))


@pytest.mark.corpus
def test_corpus_acks_and_resources(corpus, server):
    with MLLPClient("127.0.0.1", server.port) as client:  # one persistent connection for the whole feed
        for name, code in EXPECTED_ACK.items():
            raw = (corpus / "hl7v2" / name).read_bytes()
            ack = _ack(client.send_message(raw))
            assert str(ack["MSA.F1"]) == code, name
            assert str(ack["MSA.F2"]) == decode(raw).control_id, name
            if code != "AA":
                assert ack.segment("ERR"), name
    store = server.store
    omi = decode((corpus / "hl7v2" / "omi-o23-dcm4che-imaging-order.hl7").read_bytes())
    ipc = omi.segment("IPC")
    (sr,) = _search(store, "ServiceRequest", [("identifier", f"https://dacs-fhir.org/fhir/sid/accession|{omi.value(ipc, 1)}")])
    patient_id = omi.value("PID", 3)
    (patient,) = _search(store, "Patient", [("identifier", f"https://dacs-fhir.org/fhir/sid/patient-id/ADT1|{patient_id}")])
    assert sr["subject"]["reference"] == f"Patient/{patient['id']}"
    assert patient["name"][0]["family"] == omi.value("PID", 5, 1, 1)
    a01 = decode((corpus / "hl7v2" / "adt-a01-fhirconverter-01.hl7").read_bytes())
    found = _search(store, "Patient", [("identifier", a01.value("PID", 3, 1, 1))])
    assert len(found) == 1 and found[0]["gender"] == "male"  # A01 then A04 for the same patient: one Patient
    inbox = server.receiver.inbox
    failed = {i.meta.get("control_id"): i for i in inbox.list(status=FAILED, kind="hl7v2")}
    assert set(failed) == {"MSG00018", "1001129"}
    assert failed["MSG00018"].reason.startswith("AE 101")
    assert len(list(inbox.list(status=DONE, kind="hl7v2"))) == 7


@pytest.mark.corpus
def test_a40_merge_repoints_dose_records(corpus, server):
    adt = b"MSH|^~\\&|RIS|H|DACS|R|20240101||ADT^A01|M1|P|2.5.1\rPID|||OLD_PID_1^^^ADT1||Old_Smith^Lucy||20141014|F\r"
    assert str(_send(server.port, adt)["MSA.F1"]) == "AA"
    (old,) = _search(server.store, "Patient", [("identifier", "OLD_PID_1")])
    old_ref = f"Patient/{old['id']}"
    with server.store.transaction() as tx:
        obs = tx.create({"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]},
                         "subject": {"reference": old_ref}}).resource
        study = tx.create({"resourceType": "ImagingStudy", "status": "available", "subject": {"reference": old_ref}}).resource
    ack = _send(server.port, (corpus / "hl7v2" / "adt-a40-dcm4che-patient-merge.hl7").read_bytes())
    assert str(ack["MSA.F1"]) == "AA"
    (new,) = _search(server.store, "Patient", [("identifier", "NEW_PID_1")])
    with server.store.transaction() as tx:
        assert tx.read("Observation", obs["id"])["subject"]["reference"] == f"Patient/{new['id']}"
        assert tx.read("ImagingStudy", study["id"])["subject"]["reference"] == f"Patient/{new['id']}"
        old_now = tx.read("Patient", old["id"])
        new_now = tx.read("Patient", new["id"])
    assert old_now["active"] is False
    assert old_now["link"] == [{"other": {"reference": f"Patient/{new['id']}"}, "type": "replaced-by"}]
    assert {"other": {"reference": old_ref}, "type": "replaces"} in new_now["link"]


def test_failed_message_is_replayed_after_a_fix(server):
    raw = b"MSH|^~\\&|RIS|H|DACS|R|20240101||ADT^A08|R1|P|2.5.1\rPID|||R1^^^X||Roe^Ri||19700101|F\r"
    receiver = server.receiver
    real_store = receiver.store

    class Down:
        def transaction(self):
            raise OSError("database unavailable")

    receiver.pipeline.store = Down()
    ack = _send(server.port, raw)
    assert str(ack["MSA.F1"]) == "AE" and str(ack.segment("ERR")(3)(1)(1)) == "207"
    (item,) = [i for i in receiver.inbox.list(kind="hl7v2") if i.meta.get("control_id") == "R1"]
    assert item.status == FAILED
    receiver.pipeline.store = real_store  # the fix
    reply, err = receiver.replay(item.id)
    assert err is None and b"MSA|AA|R1" in reply
    assert receiver.inbox.get(item.id).status == DONE
    assert _search(real_store, "Patient", [("identifier", "R1")])[0]["name"][0]["family"] == "Roe"


def test_update_keeps_identifiers_from_other_sources(server):
    with server.store.transaction() as tx:
        tx.create({"resourceType": "Patient", "identifier": [{"system": "https://dacs-fhir.org/fhir/sid/patient-id/X", "value": "K1"},
                                                             {"system": "urn:oid:1.2.3", "value": "DICOM-K1"}]})
    ack = _send(server.port, b"MSH|^~\\&|RIS|H|DACS|R|20240101||ADT^A08|K|P|2.3\rPID|||K1^^^X||Kay^Kim||19500101|M\r")
    assert str(ack["MSA.F1"]) == "AA"
    (p,) = _search(server.store, "Patient", [("identifier", "K1")])
    assert {i["value"] for i in p["identifier"]} == {"K1", "DICOM-K1"}
    assert p["name"][0]["family"] == "Kay" and p["gender"] == "male"


def test_ambiguous_accession_is_an_ae_with_duplicate_key(server):
    acsn = {"system": "https://dacs-fhir.org/fhir/sid/accession", "value": "DUP1"}
    with server.store.transaction() as tx:
        for _ in range(2):
            tx.create({"resourceType": "ServiceRequest", "status": "active", "intent": "order", "identifier": [acsn],
                       "subject": {"display": "unknown"}})
    raw = (b"MSH|^~\\&|RIS|H|DACS|R|20240101||ORM^O01|D1|P|2.5.1\rPID|||D1^^^HOSP||Doe^Jo\r"
           b"ORC|NW|P1\rOBR|1|P1||CT1^CT head^L||||||||||||||DUP1\r")
    ack = _send(server.port, raw)
    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack.segment("ERR")(3)(1)(1)) == "205"
    assert not _search(server.store, "Patient", [("identifier", "D1")])  # all or nothing
