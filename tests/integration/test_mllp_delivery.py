"""Outbound store-and-forward from the database outbox: ORU^R01 to a test MLLP receiver, in order, exactly once,
through outages."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import hl7
import pytest
from peers import wait_until

from dacs_fhir.delivery import PARKED, SENT, Outbox, Pumps, drain, enqueue_report
from dacs_fhir.domain import (
    CT,
    SOURCE_RDSR,
    AccumulatedDose,
    Concept,
    DoseReport,
    Measurement,
    Patient,
    Quantity,
    Study,
)
from dacs_fhir.listeners.mllp import start_mllp

pytestmark = pytest.mark.integration


class Receiver:
    """A test HL7 system: records what it gets and answers with a configurable ACK code."""

    def __init__(self, port=0, code="AA"):
        self.messages: list[str] = []
        self.code = code
        self.lock = threading.Lock()
        self.handle = start_mllp("127.0.0.1", port, self)

    def __call__(self, raw: bytes) -> bytes:
        msg = hl7.parse(raw.decode("utf-8"))
        with self.lock:
            self.messages.append(raw.decode("utf-8"))
            code = self.code(str(msg.segment("MSH")(10))) if callable(self.code) else self.code
        return str(msg.create_ack(ack_code=code)).encode()

    @property
    def control_ids(self):
        with self.lock:
            return [str(hl7.parse(m).segment("MSH")(10)) for m in self.messages]

    def stop(self):
        self.handle.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(n: int) -> DoseReport:
    return DoseReport(
        sop_instance_uid=f"1.2.3.{n}.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.88.67", kind=CT, source=SOURCE_RDSR,
        study=Study(instance_uid=f"1.2.3.{n}", accession_number=f"A{n}"),
        patient=Patient(id=f"P{n}", issuer="HOSP"),
        accumulated=(AccumulatedDose(measurements=(Measurement(Concept("DCM", "113813"), Quantity(100.0 + n, "mGy.cm")),)),),
    )


def _oru(n: int, control: str) -> bytes:
    from dacs_fhir.mappers.hl7v2 import to_oru

    return to_oru(report(n), control_id=control).encode()


@pytest.fixture
def outbox(store):
    box = Outbox(store)
    yield box
    box.close()


@pytest.fixture
def senders(outbox):
    """The in-process senders of ``outbox`` (a thread per destination)."""
    pumps = Pumps(outbox)
    yield pumps
    pumps.stop()


def test_down_then_up_receives_every_message_once_in_order(outbox):
    port = free_port()
    url = f"mllp://127.0.0.1:{port}?timeout=2&backoff=0.05&backoff_max=0.2&attempts=1000"
    ids = [f"C{i}" for i in range(30)]
    for i, cid in enumerate(ids):
        outbox.enqueue(url, _oru(i, cid), "application/hl7-v2")
    assert drain(outbox, url) > 0  # nobody listening: head waits for a retry
    head = outbox.head(url)
    assert head.attempts >= 1 and "failed" in head.last_error
    rx = Receiver(port)
    try:
        deadline = time.time() + 20
        while (delay := drain(outbox, url)) is not None and time.time() < deadline:
            time.sleep(min(delay, 0.1))
        assert rx.control_ids == ids
        assert all(m.status == SENT for m in outbox.list(destination=url))
        assert drain(outbox, url) is None
        assert rx.control_ids == ids  # nothing sent twice after the AA
    finally:
        rx.stop()


def test_receiver_restart_mid_stream_keeps_order_and_no_duplicates(outbox, tmp_path):
    port = free_port()
    url = f"mllp://127.0.0.1:{port}?timeout=2&backoff=0.05&backoff_max=0.2&attempts=1000"
    rx = Receiver(port)
    ids = [f"R{i}" for i in range(40)]
    for i, cid in enumerate(ids[:20]):
        outbox.enqueue(url, _oru(i, cid), "application/hl7-v2")
    assert drain(outbox, url) is None
    rx.stop()
    for i, cid in enumerate(ids[20:], start=20):
        outbox.enqueue(url, _oru(i, cid), "application/hl7-v2")
    assert drain(outbox, url) > 0
    rx2 = Receiver(port)
    try:
        while drain(outbox, url) is not None:
            time.sleep(0.05)
        assert rx.control_ids + rx2.control_ids == ids
    finally:
        rx2.stop()


def test_ae_is_retried_then_parked_and_replayable(outbox):
    rx = Receiver(code=lambda control_id: "AE" if control_id == "E1" else "AA")
    url = f"mllp://127.0.0.1:{rx.handle.port}?timeout=2&backoff=0.01&attempts=3"
    try:
        first = outbox.enqueue(url, _oru(1, "E1"), "application/hl7-v2")
        outbox.enqueue(url, _oru(2, "E2"), "application/hl7-v2")
        while (delay := drain(outbox, url)) is not None:
            time.sleep(delay)
        parked = outbox.get(first)
        assert parked.status == PARKED and parked.attempts == 3 and "AE" in parked.last_error
        assert rx.control_ids == ["E1", "E1", "E1", "E2"]  # E2 goes on once E1 is parked
        rx.code = "AA"
        outbox.replay(first)
        assert drain(outbox, url) is None
        assert rx.control_ids[-1] == "E1"
    finally:
        rx.stop()


def test_enqueue_report_in_process_pump_delivers_oru(senders, settings):
    settings.broker_url = None  # the in-process pump (the broker-backed task has its own test)
    rx = Receiver()
    url = f"mllp://127.0.0.1:{rx.handle.port}?timeout=2&backoff=0.05"
    try:
        for n in range(5):
            enqueue_report(senders, settings, report(n), key=f"r{n}", destinations=[url])
        enqueue_report(senders, settings, report(0), key="r0", destinations=[url])  # same key: not queued again
        assert wait_until(lambda: len(rx.messages) == 5)
        time.sleep(0.2)
        assert len(rx.messages) == 5
        accessions = [str(hl7.parse(m)["OBR.F18"]) for m in rx.messages]
        assert accessions == [f"A{n}" for n in range(5)]
        dlp = [float(str(hl7.parse(m).segments("OBX")[2](5))) for m in rx.messages]
        assert dlp == [100.0 + n for n in range(5)]
    finally:
        rx.stop()


def test_received_oru_obx_match_fhir_summary(senders, settings):
    settings.broker_url = None
    from dacs_fhir.mappers import fhir
    rx = Receiver()
    url = f"mllp://127.0.0.1:{rx.handle.port}?timeout=2"
    try:
        r = report(7)
        enqueue_report(senders, settings, r, destinations=[url])
        assert wait_until(lambda: len(rx.messages) == 1)
        bundle = fhir.to_bundle(r)
        summary = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
                       and any(c.get("code") == "73569-6" for c in e["resource"]["code"]["coding"]))
        comps = {c["code"]["coding"][0]["code"]: c for c in summary.get("component", [])}
        msg = hl7.parse(rx.messages[0])
        for obx in msg.segments("OBX"):
            if str(obx(2)) == "NM":
                code = str(obx(3)(1)(1))
                assert code in comps
                q = comps[code].get("valueQuantity") or {"value": comps[code].get("valueInteger")}
                assert float(str(obx(5))) == pytest.approx(float(q["value"]))
                if "code" in q:
                    assert str(obx(6)(1)(1)) == q["code"]
    finally:
        rx.stop()


class FhirPeer:
    """A FHIR server stand-in: answers each POST with the next status of ``statuses`` (then 200)."""

    def __init__(self, statuses=()):
        import http.server
        import json

        peer = self
        self.bodies: list[dict] = []
        self.statuses = list(statuses)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = peer.statuses.pop(0) if peer.statuses else 200
                if status == 200:
                    peer.bodies.append(body)
                out = json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": []}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_fhir_destination_retries_5xx_and_parks_4xx(outbox, settings):
    from dacs_fhir.delivery import parse, payload_for

    peer = FhirPeer([503, 503])
    url = f"fhir+http://127.0.0.1:{peer.port}/fhir?backoff=0.01&attempts=5"
    try:
        first = outbox.enqueue(url, payload_for(parse(url), report(1)), "application/fhir+json")
        while (delay := drain(outbox, url)) is not None:
            time.sleep(delay)
        assert outbox.get(first).status == SENT and outbox.get(first).attempts == 3
        (bundle,) = peer.bodies
        assert bundle["type"] == "transaction"
        assert any(e["resource"]["resourceType"] == "ImagingStudy" for e in bundle["entry"])
        peer.statuses = [422]
        second = outbox.enqueue(url, payload_for(parse(url), report(2)), "application/fhir+json")
        assert drain(outbox, url) is None
        assert outbox.get(second).status == PARKED and "422" in outbox.get(second).last_error
    finally:
        peer.stop()


@pytest.mark.skipif(not os.environ.get("DACS_BROKER_URL"), reason="needs DACS_BROKER_URL (a real Celery worker)")
def test_delivery_through_a_real_celery_worker(settings, store, tmp_path):
    from dacs_fhir.tasks import TaskLayer

    settings.queue = f"dacs-test-{uuid.uuid4().hex[:8]}"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    senders = Pumps(Outbox(store), TaskLayer(settings).schedule_delivery)  # a worker sends
    env = dict(os.environ, DACS_DATABASE_URL=settings.database_url, DACS_DATA_DIR=str(settings.data_dir),
               DACS_BROKER_URL=settings.broker_url, DACS_QUEUE=settings.queue)
    rx = Receiver()
    url = f"mllp://127.0.0.1:{rx.handle.port}?timeout=2&backoff=0.05"
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([sys.executable, "-m", "dacs_fhir", "worker", "--hostname", f"{settings.queue}@localhost"],
                              env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        for n in range(3):
            enqueue_report(senders, settings, report(n), key=f"w{n}", destinations=[url])
        assert wait_until(lambda: len(rx.messages) == 3, timeout=120), (tmp_path / "worker.log").read_text()[-2000:]
        time.sleep(0.5)
        assert [str(hl7.parse(m)["OBR.F18"]) for m in rx.messages] == ["A0", "A1", "A2"]  # once each, in order
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
        rx.stop()
