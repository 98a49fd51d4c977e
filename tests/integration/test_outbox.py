"""The outbox in the main database: a result and its queued ORU are committed together, survive a crash
between commit and send, are sent exactly once in order by several senders, and can be sent again on demand."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import hl7
import pytest
from peers import wait_until

from dacs_fhir import delivery
from dacs_fhir.delivery import PENDING, SENT, Outbox, Pumps, drain
from dacs_fhir.listeners.mllp import start_mllp

pytestmark = pytest.mark.integration


class Receiver:
    """A test HL7 system: keeps every message it ACKs (AA), optionally slowly, and notes overlapping sends."""

    def __init__(self, delay: float = 0.0):
        self.messages: list[str] = []
        self.delay = delay
        self.lock = threading.Lock()
        self.busy = 0
        self.overlaps = 0
        self.handle = start_mllp("127.0.0.1", 0, self)
        self.url = f"mllp://127.0.0.1:{self.handle.port}?timeout=5&backoff=0.05&backoff_max=0.2"

    def __call__(self, raw: bytes) -> bytes:
        with self.lock:
            self.busy += 1
            self.overlaps += self.busy > 1
        try:
            if self.delay:
                time.sleep(self.delay)
            msg = hl7.parse(raw.decode("utf-8"))
            with self.lock:
                self.messages.append(raw.decode("utf-8"))
            return str(msg.create_ack(ack_code="AA")).encode()
        finally:
            with self.lock:
                self.busy -= 1

    def field(self, name: str) -> list[str]:
        with self.lock:
            return [str(hl7.parse(m)[name]) for m in self.messages]

    def stop(self):
        self.handle.stop()


@pytest.fixture
def receiver():
    rx = Receiver()
    yield rx
    rx.stop()


def _sample() -> bytes:
    from dacs_fhir.samples import sample_objects

    return sample_objects()[0][1]


# ---- killed between commit and send (issue 12 §3)
SCRIPT = r"""
import os, sys, time
from pathlib import Path
from dacs_fhir import delivery
from dacs_fhir.composition import build_pipeline
from dacs_fhir.config import Settings
from dacs_fhir.pipeline import Pipeline

mode, path = sys.argv[1], Path(sys.argv[2])
settings = Settings.from_env()
pipeline = build_pipeline(settings)
if mode == "crash":
    # test hook (this script only): the process dies right after the store commit, before any sender
    # is woken, as a worker killed at that moment would
    Pipeline._wake_delivery = lambda self, urls: os._exit(137)
    item = pipeline.inbox.put("dicom", path.read_bytes())
    pipeline.process(item.id)
    sys.exit("the process should have died after the commit")
if mode == "send":  # processed and woken as usual; the test kills the process while the ORU is in flight
    item = pipeline.inbox.put("dicom", path.read_bytes())
    pipeline.process(item.id)
    time.sleep(120)
    sys.exit("the process should have been killed")
# restart: the inbox item left pending is processed again, the senders resume
print(",".join(pipeline.process(i.id).status for i in pipeline.inbox.list(status="pending")))
outbox = pipeline.deliveries.outbox
delivery.resume(pipeline.deliveries, settings)
deadline = time.time() + 60
while outbox.destinations() and time.time() < deadline:
    time.sleep(0.05)
pipeline.deliveries.stop()
"""


def test_worker_killed_between_commit_and_send_delivers_once_after_restart(settings, store, receiver, tmp_path):
    sample = tmp_path / "sample.dcm"
    sample.write_bytes(_sample())
    env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DATABASE_URL": settings.database_url,
           "DACS_DESTINATIONS": receiver.url, "DACS_BROKER_URL": ""}

    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", SCRIPT, mode, str(sample)], env=env, capture_output=True,
                              text=True, timeout=180)

    crashed = run("crash")
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    outbox = Outbox(store)
    (queued,) = outbox.list()
    assert queued.status == PENDING and queued.destination == receiver.url  # committed with the dose record
    time.sleep(0.3)
    assert receiver.messages == []

    restarted = run("restart")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    assert restarted.stdout.strip() == "duplicate"  # the study was stored before the crash: nothing new queued
    assert wait_until(lambda: len(receiver.messages) >= 1)
    time.sleep(0.5)
    assert len(receiver.messages) == 1
    (sent,) = outbox.list()
    assert sent.status == SENT and sent.attempts == 1
    assert receiver.messages[0].encode() == sent.payload  # exactly what the outbox kept
    assert receiver.field("MSH.F10") == [str(hl7.parse(sent.payload.decode())["MSH.F10"])]


def test_worker_killed_while_its_oru_waits_for_the_ack_sends_the_same_message_after_restart(settings, store, tmp_path):
    """The message was sent but not acknowledged: it is sent again after the restart, byte for byte (same
    MSH-10, so the receiver can tell it is the same message), and the dead sender's claim is no obstacle."""
    held, release = threading.Event(), threading.Event()

    class Withholding(Receiver):
        def __call__(self, raw: bytes) -> bytes:
            if not held.is_set():
                held.set()
                release.wait(60)  # the first ACK is withheld until the sender is dead
            return super().__call__(raw)

    rx = Withholding()
    sample = tmp_path / "sample.dcm"
    sample.write_bytes(_sample())
    env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DATABASE_URL": settings.database_url,
           "DACS_DESTINATIONS": rx.url, "DACS_BROKER_URL": ""}
    worker = subprocess.Popen([sys.executable, "-c", SCRIPT, "send", str(sample)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert held.wait(120), worker.stderr.read()[-2000:] if worker.poll() is not None else "no ORU arrived"
        worker.kill()
        worker.wait(30)
        release.set()
        restarted = subprocess.run([sys.executable, "-c", SCRIPT, "restart", str(sample)], env=env,
                                   capture_output=True, text=True, timeout=180)
        assert restarted.returncode == 0, restarted.stderr[-2000:]
        assert wait_until(lambda: len(rx.messages) == 2)
        time.sleep(0.5)
        first, second = rx.messages
        assert first == second  # the kept payload: same bytes, same control id
        (sent,) = Outbox(store).list()
        assert sent.status == SENT and sent.payload.decode() == first
    finally:
        release.set()
        if worker.poll() is None:
            worker.kill()
        rx.stop()


def test_a_later_object_of_the_study_sends_a_correction(settings, store, receiver):
    """HL7 v2.5.1 OBR-25: F for the study's first result, C for the result updated by a later object."""
    import dataclasses

    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.mappers.dicom import parse
    from dacs_fhir.pipeline import IMPORTED, UPDATED

    settings.destinations = (receiver.url,)
    settings.broker_url = None
    pipe = build_pipeline(settings, store=store)
    first = parse(_sample())
    # another object of the study with irradiations of its own: the study's merged result changes
    second = dataclasses.replace(first, sop_instance_uid="1.2.826.0.1.3680043.2.1.12.777",
                                 events=tuple(dataclasses.replace(e, uid=e.uid + ".9") for e in first.events))
    assert pipe.ingest_report(first).status == IMPORTED
    assert pipe.ingest_report(second).status == UPDATED
    assert wait_until(lambda: len(receiver.messages) == 2), [(m.status, m.last_error) for m in Outbox(store).list()]
    assert receiver.field("OBR.F25") == ["F", "C"]
    assert [m.corrected for m in Outbox(store).list()] == [False, True]


def test_a_rolled_back_ingest_queues_nothing(settings, store, receiver, monkeypatch):
    from dacs_fhir import pipeline as pipeline_module
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.mappers.dicom import parse

    settings.destinations = (receiver.url,)
    pipe = build_pipeline(settings, store=store)

    def fail(*_args, **_kwargs):
        raise RuntimeError("fails after the outbox row was written, before the commit")

    monkeypatch.setattr(pipeline_module, "Outcome", fail)
    with pytest.raises(RuntimeError):
        pipe.ingest_report(parse(_sample()))
    assert list(Outbox(store).list()) == []
    with store.transaction() as tx:
        assert tx.dose_reports_for_study(parse(_sample()).study.instance_uid) == []


# ---- several senders on one destination
def test_two_senders_with_their_own_connections_send_each_message_once_in_order(database_url):
    """PostgreSQL: the lease row lock (SKIP LOCKED) keeps one sender per destination; SQLite: the lease."""
    from dacs_fhir.store import Store

    stores = [Store(database_url) for _ in range(2)]
    stores[0].upgrade()
    rx = Receiver(delay=0.003)
    boxes = [Outbox(s) for s in stores]
    control_ids = [f"T{i:03d}" for i in range(60)]
    for cid in control_ids:
        boxes[0].enqueue(rx.url, _oru(cid), "application/hl7-v2")
    sent = [0, 0]
    errors: list[BaseException] = []

    def pump(n: int) -> None:
        deadline = time.time() + 60
        try:
            while time.time() < deadline:
                before = len(rx.messages)
                delay = drain(boxes[n], rx.url, max_messages=3)
                sent[n] += len(rx.messages) - before
                if delay is None and boxes[n].head(rx.url) is None:
                    return
                time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=pump, args=(n,)) for n in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        assert not errors, errors
        assert rx.field("MSH.F10") == control_ids, f"sent by each sender: {sent}"
        assert rx.overlaps == 0
        assert all(m.status == SENT and m.attempts == 1 for m in boxes[1].list(destination=rx.url))
    finally:
        rx.stop()
        for s in stores:
            s.dispose()


def _oru(control_id: str) -> bytes:
    return (f"MSH|^~\\&|DACS|RAD|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r"
            f"PID|1||P1^^^HOSP\rOBR|1|||113701^X-Ray Radiation Dose Report^DCM\r").encode()


# ---- sent again on demand
def test_resend_study_rebuilds_its_result_and_queues_it_again(settings, store, receiver):
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.mappers.dicom import parse

    settings.destinations = (receiver.url,)
    settings.broker_url = None
    report = parse(_sample())
    build_pipeline(settings, store=store).ingest_report(report)
    assert wait_until(lambda: len(receiver.messages) == 1)
    env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DATABASE_URL": settings.database_url,
           "DACS_DESTINATIONS": receiver.url, "DACS_BROKER_URL": ""}

    def cli(*args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dacs_fhir", "hl7", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    first = Outbox(store).list()
    (first,) = list(first)
    again = cli("resend", str(first.id))
    assert again.returncode == 1 and "acknowledged" in again.stderr  # an ACKed message is not re-sent by id
    done = cli("resend", "--study", report.study.instance_uid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"queued for {receiver.url}")
    senders = Pumps(Outbox(store))
    senders.kick(receiver.url)
    assert wait_until(lambda: len(receiver.messages) == 2)
    senders.stop()
    one, two = (hl7.parse(m) for m in receiver.messages)
    assert str(one["MSH.F10"]) != str(two["MSH.F10"])  # a new message, not a copy of the first
    assert str(one["OBR.F18"]) == str(two["OBR.F18"]) == report.study.accession_number
    assert [str(s) for s in one.segments("OBX")] == [str(s) for s in two.segments("OBX")]
    listed = cli("outbox", "--status", "sent")
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 2
    unknown = cli("resend", "--study", "1.2.3.999999")
    assert unknown.returncode == 1 and "no dose report" in unknown.stderr
    other = cli("resend", "--study", report.study.instance_uid, "--destination", "mllp://127.0.0.1:1")
    assert other.returncode == 0
    assert [m.destination for m in Outbox(store).list(status=PENDING)] == ["mllp://127.0.0.1:1"]


# ---- upgrade from the outbox file
def test_pending_messages_of_the_old_outbox_file_are_queued_in_the_database(settings, store, receiver):
    """Written in WAL mode by a process that died: its last rows are still in the WAL file."""
    settings.broker_url = None  # sent by this process's senders
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    old = settings.data_dir / "outbox.sqlite"
    rows = [(receiver.url, cid, "application/hl7-v2", _oru(cid), status, time.time())
            for cid, status in (("L1", "sent"), ("L2", "pending"), ("L3", "pending"))]
    subprocess.run([sys.executable, "-c", OLD_OUTBOX_WRITER, str(old), repr(rows)], check=True, timeout=60)
    assert old.with_name("outbox.sqlite-wal").stat().st_size > 0
    senders = Pumps(Outbox(store))
    delivery.resume(senders, settings)
    assert wait_until(lambda: len(receiver.messages) == 2)
    senders.stop()
    assert receiver.field("MSH.F10") == ["L2", "L3"]
    assert not old.exists() and old.with_name("outbox.sqlite.imported").exists()
    assert not old.with_name("outbox.sqlite-wal").exists()


OLD_OUTBOX_WRITER = r"""
import ast, os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE message (id INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT NOT NULL, key TEXT, "
           "content_type TEXT NOT NULL, payload BLOB NOT NULL, status TEXT NOT NULL DEFAULT 'pending', "
           "attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, "
           "last_error TEXT NOT NULL DEFAULT '', created REAL NOT NULL, sent REAL)")
for row in ast.literal_eval(sys.argv[2]):
    db.execute("INSERT INTO message (destination, key, content_type, payload, status, created) "
               "VALUES (?, ?, ?, ?, ?, ?)", row)
os._exit(0)  # dies without closing: no checkpoint, the rows stay in the WAL
"""


def test_the_migration_makes_the_tables_the_models_describe(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from dacs_fhir.store.models import metadata

    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if "outbox" in repr(d)] == []
