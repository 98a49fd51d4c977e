"""HL7 v2 through the one ingest path: the changes each message commits reach a rule of the rules stage
(dacs_fhir.registry.rules) after the commit; a message answered AE hands off nothing."""
from __future__ import annotations

import socket

import pytest

from dacs_fhir.hl7v2.receiver import Receiver
from dacs_fhir.inbox import Inbox
from dacs_fhir.listeners.mllp import start_mllp_for
from dacs_fhir.composition import build_pipeline
from dacs_fhir.registry import rules as rule_registry
from dacs_fhir.store import Change
from dacs_fhir.transport.mllp import FrameReader, exchange

pytestmark = pytest.mark.integration
MSH = "MSH|^~\\&|RIS|HOSP|DACS|RAD|20240301101500||{type}|{cid}|P|2.5.1\r"
PID = "PID|1||{mrn}^^^HOSP^MR||{family}^Ann||19700101|F\r"


@pytest.fixture
def handed():
    """Every ChangeSet the rules stage is given, through a rule registered for the test only."""
    seen: list = []
    rule_registry.add("test-hl7-changes", lambda change_set, store: seen.append(change_set))
    yield seen
    rule_registry.remove("test-hl7-changes")
    assert "test-hl7-changes" not in rule_registry.names()


@pytest.fixture
def feed(settings, store):
    settings.broker_url = None  # the rules stage runs on the in-process task layer's thread
    pipeline = build_pipeline(settings, store=store, inbox=Inbox(settings.inbox_dir))
    handle = start_mllp_for(settings, pipeline)
    sock = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
    reader = FrameReader()

    def send(text: str) -> str:
        ack = exchange(sock, text.encode(), reader).decode()
        pipeline.tasks.drain()  # the hand-off runs off the MLLP thread: wait for it
        return ack

    send.store, send.receiver = store, handle.receiver
    yield send
    sock.close()
    handle.stop()


def _msa(ack: str) -> str:
    return next(s for s in ack.split("\r") if s.startswith("MSA")).split("|")[1]


def _patient_id(store, mrn: str) -> str:
    with store.transaction() as tx:
        (found,) = tx.search("Patient", [("identifier", mrn)]).resources
    return found["id"]


def _item_of(receiver: Receiver, control_id: str) -> str:
    (item,) = [i for i in receiver.inbox.list(kind="hl7v2") if i.meta.get("control_id") == control_id]
    return item.id


def test_a08_update_is_handed_with_its_previous_version(feed, handed):
    assert _msa(feed(MSH.format(type="ADT^A01", cid="R1") + PID.format(mrn="RU1", family="Before"))) == "AA"
    pid = _patient_id(feed.store, "RU1")
    assert [c for cs in handed for c in cs.changes] == [Change("Patient", pid, 1, None, "create")]
    handed.clear()
    assert _msa(feed(MSH.format(type="ADT^A08^ADT_A01", cid="R2") + PID.format(mrn="RU1", family="After"))) == "AA"
    (change_set,) = handed
    assert change_set.source == _item_of(feed.receiver, "R2")
    assert change_set.changes == (Change("Patient", pid, 2, 1, "update"),)


def test_order_hands_patient_and_service_request(feed, handed):
    orm = (MSH.format(type="ORM^O01", cid="R3") + PID.format(mrn="RO1", family="Order")
           + "ORC|NW|PL1|FL1||SC\rOBR|1|PL1|FL1|CTHEAD^CT head^L" + "|" * 14 + "ACC-R3" + "|" * 6 + "CT\r")
    assert _msa(feed(orm)) == "AA"
    (change_set,) = handed
    assert change_set.source == _item_of(feed.receiver, "R3")
    kinds = sorted((c.resource_type, c.version, c.previous_version, c.method) for c in change_set.changes)
    assert kinds == [("Patient", 1, None, "create"), ("ServiceRequest", 1, None, "create")]
    with feed.store.transaction() as tx:
        (sr,) = tx.search("ServiceRequest", [("identifier", "ACC-R3")]).resources
    assert Change("ServiceRequest", sr["id"], 1, None, "create") in change_set.changes


def test_merge_hands_the_repointed_observations(feed, handed):
    assert _msa(feed(MSH.format(type="ADT^A01", cid="R4") + PID.format(mrn="RM-OLD", family="Merge"))) == "AA"
    old = _patient_id(feed.store, "RM-OLD")
    with feed.store.transaction() as tx:
        obs = [tx.create({"resourceType": "Observation", "status": "final", "subject": {"reference": f"Patient/{old}"},
                          "code": {"coding": [{"system": "http://loinc.org", "code": "73569-6"}]}}).resource["id"] for _ in range(2)]
    handed.clear()
    a40 = (MSH.format(type="ADT^A40^ADT_A39", cid="R5") + PID.format(mrn="RM-NEW", family="Merge")
           + "MRG|RM-OLD^^^HOSP^MR\r")
    assert _msa(feed(a40)) == "AA"
    (change_set,) = handed
    assert change_set.source == _item_of(feed.receiver, "R5")
    new = _patient_id(feed.store, "RM-NEW")
    for oid in obs:
        assert Change("Observation", oid, 2, 1, "update") in change_set.changes
    assert Change("Patient", old, 2, 1, "update") in change_set.changes  # retired, linked replaced-by
    assert Change("Patient", new, 1, None, "create") in change_set.changes  # created with its "replaces" link, once
    assert len(change_set.changes) == 4


def test_message_answered_ae_hands_off_nothing(feed, handed):
    orm = (MSH.format(type="ORM^O01", cid="R6") + PID.format(mrn="RE1", family="Error")
           + "ORC|NW|PL6\rOBR|1|PL6||CTHEAD^CT head^L\r")  # no accession number: AE 101
    ack = feed(orm)
    assert _msa(ack) == "AE" and "\rERR|" in ack
    assert handed == []
    with feed.store.transaction() as tx:
        assert tx.search("Patient", [("identifier", "RE1")]).resources == []  # the Patient of PID was not written either


def test_refused_sender_replayed_by_the_operator_reaches_the_rules(settings, store, handed, monkeypatch, capsys):
    """A message kept failed (sender not on the allow-list) is applied by ``dacs-fhir hl7 replay`` through
    the same pipeline transaction: the rules stage gets its changes, with the inbox item as the source."""
    from dacs_fhir.cli import main

    settings.mllp_allowed_senders = ("PACS^*",)
    settings.broker_url = None
    handle = start_mllp_for(settings, build_pipeline(settings, store=store, inbox=Inbox(settings.inbox_dir)))
    try:
        with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
            ack = exchange(sock, (MSH.format(type="ADT^A01", cid="R7") + PID.format(mrn="RR1", family="Later")).encode(), FrameReader())
        assert _msa(ack.decode()) == "AR"
        item_id = _item_of(handle.receiver, "R7")
    finally:
        handle.stop()
    assert handed == []
    monkeypatch.setenv("DACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DACS_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("DACS_BROKER_URL", raising=False)  # the command's rules stage runs in its own process
    capsys.readouterr()
    assert main(["hl7", "failed"]) == 0 and item_id in capsys.readouterr().out
    assert main(["hl7", "replay", item_id]) == 0
    assert capsys.readouterr().out.strip() == f"{item_id}\tAA"
    (change_set,) = handed
    assert change_set.source == item_id
    assert change_set.changes == (Change("Patient", _patient_id(store, "RR1"), 1, None, "create"),)
