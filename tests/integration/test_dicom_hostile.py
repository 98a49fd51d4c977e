"""The Storage SCP against hostile or broken peers (issue #12 §4), over the real protocol on loopback:
forged re-sends under a stored UID, UIDs that would be paths, objects too large, connection and
association floods, idle peers, lying PDU lengths. Each checks the answer and that what was stored
before is unchanged."""
from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from peers import closed_by_server
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import CTImageStorage, Verification

from dacs_fhir.inbox import DONE, FAILED, Inbox
from dacs_fhir.listeners.dicom_scp import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, start_scp

pytestmark = pytest.mark.integration
RDSR = "rdsr/ct-toshiba-aquilion-precision-dosecheck.dcm"


class Recorder(list):
    def __call__(self, item):
        self.append(item)


def send(port: int, files: list[Path], ae_title: str = "MODALITY") -> list[int]:
    """Each file as it is on disk, unparsed (its file meta gives the Affected SOP Instance UID)."""
    ae = AE(ae_title=ae_title)
    for pair in {(m.MediaStorageSOPClassUID, m.TransferSyntaxUID) for m in (pydicom.dcmread(f, stop_before_pixels=True, force=True).file_meta for f in files)}:
        ae.add_requested_context(*pair)
    old, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
        assert assoc.is_established
        statuses = [assoc.send_c_store(f).Status for f in files]
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses


def under_uid(src: Path, dst: Path, uid: str, dataset: bytes | None = None) -> Path:
    """``src`` with its file meta's SOP Instance UID set to ``uid`` and, when given, ``dataset`` as its data set."""
    _, offset = split_dataset(src)
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    meta = ds.file_meta
    meta.MediaStorageSOPInstanceUID = uid
    from pydicom.filewriter import write_file_meta_info

    with open(dst, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fh, meta, enforce_standard=False)
        fh.write(dataset if dataset is not None else src.read_bytes()[offset:])
    return dst


@pytest.fixture
def pipeline(settings):
    from dacs_fhir.composition import build_pipeline

    settings.broker_url = None
    return build_pipeline(settings)


def _snapshot(pipeline, refs: list[str]) -> dict:
    with pipeline.store.transaction() as tx:
        return {ref: tx.read(*ref.split("/")) for ref in refs}


def test_forged_and_repeated_objects_under_a_stored_uid_leave_the_original_as_it_was(settings, pipeline, corpus, tmp_path):
    rec = Recorder()
    handle = start_scp(settings, rec, inbox=pipeline.inbox)
    try:
        original = corpus / RDSR
        uid = pydicom.dcmread(original, stop_before_pixels=True).SOPInstanceUID
        assert send(handle.port, [original]) == [0x0000]
        first = pipeline.process(rec[0].id)
        assert first.status == "imported" and first.resources
        kept = pipeline.inbox.read(rec[0].id)
        before = _snapshot(pipeline, first.resources)

        garbage = under_uid(original, tmp_path / "garbage.dcm", uid, os.urandom(420))
        assert send(handle.port, [garbage, original]) == [0x0000, 0x0000]  # kept, each as its own item
        assert pipeline.process(rec[1].id).status == "rejected"
        assert pipeline.process(rec[2].id).status == "duplicate"

        assert len({i.id for i in rec}) == 3 and {i.meta["sop_instance_uid"] for i in rec} == {uid}
        assert pipeline.inbox.read(rec[0].id) == kept and pipeline.inbox.get(rec[0].id).status == DONE
        assert pipeline.inbox.get(rec[1].id).status == FAILED and pipeline.inbox.read(rec[1].id).endswith(garbage.read_bytes()[-420:])
        assert _snapshot(pipeline, first.resources) == before
        assert pipeline.process(rec[0].id).status == "duplicate"  # the original still replays
        assert _snapshot(pipeline, first.resources) == before
    finally:
        handle.stop()


@pytest.mark.parametrize("uid", ["..", "../../../tmp/pwn", "1.2.abc", "1..2", ".1.2", "1.2/3"])
def test_uids_that_are_no_uids_are_refused_and_write_nothing(settings, corpus, tmp_path, uid):
    rec = Recorder()
    handle = start_scp(settings, rec)
    inbox = Inbox(settings.inbox_dir)
    try:
        original = corpus / RDSR
        assert send(handle.port, [original]) == [0x0000]
        kept = inbox.read(rec[0].id)
        bad = under_uid(original, tmp_path / "bad.dcm", uid)
        files_before = sorted(p for p in settings.data_dir.parent.rglob("*") if p.is_file())
        assert send(handle.port, [bad]) == [CANNOT_UNDERSTAND]
        assert sorted(p for p in settings.data_dir.parent.rglob("*") if p.is_file()) == files_before
        assert [i.id for i in inbox.list()] == [rec[0].id] and inbox.read(rec[0].id) == kept and len(rec) == 1
        assert not list((settings.inbox_dir / ".incoming").iterdir())
    finally:
        handle.stop()


def test_uid_with_leading_zeros_as_some_modalities_send_is_kept_and_flagged(settings, corpus, tmp_path):
    rec = Recorder()
    handle = start_scp(settings, rec)
    try:
        odd = under_uid(corpus / RDSR, tmp_path / "odd.dcm", "1.2.826.0.1.3680043.8.971.00.-14899")
        assert send(handle.port, [odd]) == [0x0000]
        assert rec[0].meta["uid_nonconformant"] is True and Inbox(settings.inbox_dir).read(rec[0].id).endswith(odd.read_bytes()[-100:])
    finally:
        handle.stop()


# ---- memory: the server in its own process, its peak RSS read from /proc --------------------------

SERVER = """
import sys, threading
from dacs_fhir.config import Settings
from dacs_fhir.listeners.dicom_scp import start_scp
handle = start_scp(Settings.from_env())
print(handle.port, flush=True)
sys.stdin.read()
handle.stop()
"""


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _ct(path: Path, pixel_bytes: int) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as fh:  # (7FE0,0010) OB, PS3.5 7.1.2: written here without holding it in memory
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, pixel_bytes))
        block = os.urandom(1 << 20)
        for _ in range(pixel_bytes >> 20):
            fh.write(block)
    return path


def _body(raw: bytes) -> bytes:
    """The data set after preamble and file meta (PS3.10 7.1: (0002,0000) gives the group's length)."""
    return raw[144 + int.from_bytes(raw[140:144], "little"):]


def test_large_object_streams_to_disk_and_one_above_the_maximum_is_refused(settings, tmp_path):
    env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DICOM": "127.0.0.1:0",
           "DACS_DICOM_MAX_OBJECT_BYTES": str(80 << 20), "DACS_DATABASE_URL": settings.database_url}
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        port = int(server.stdout.readline())
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
        assert assoc.send_c_echo().Status == 0x0000  # every module loaded: the baseline
        assoc.release()
        baseline = _vm(server.pid, "VmHWM")
        big = _ct(tmp_path / "big.dcm", 64 << 20)
        too_big = _ct(tmp_path / "too-big.dcm", 96 << 20)
        started = time.monotonic()
        assert send(port, [big, too_big]) == [0x0000, OUT_OF_RESOURCES]
        growth = _vm(server.pid, "VmHWM") - baseline
        assert growth < 60 << 20, f"peak RSS grew by {growth >> 20} MiB receiving 64 + 96 MiB"
        assert time.monotonic() - started < 30
        (item,) = Inbox(settings.inbox_dir).list()
        stored = Inbox(settings.inbox_dir).read(item.id)
        assert item.sha256 == hashlib.sha256(stored).hexdigest() and _body(stored) == _body(big.read_bytes())
        assert not list((settings.inbox_dir / ".incoming").iterdir())  # the refused one left nothing
    finally:
        server.stdin.close()
        server.wait(timeout=20)


# ---- connection and association floods -----------------------------------------------------------

def _associate(port: int, ae_title: str, source: str = "127.0.0.1"):
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = 5
    return ae.associate("127.0.0.1", port, ae_title="DACS", bind_address=(source, 0))


def _rejected_for_local_limit(assoc) -> bool:
    rsp = assoc.acceptor.primitive
    return assoc.is_rejected and (rsp.result, rsp.result_source, rsp.diagnostic) == (0x02, 0x03, 0x02)  # PS3.8 9.3.4


def _echo_works(port: int, ae_title: str = "MODALITY", source: str = "127.0.0.1") -> bool:
    assoc = _associate(port, ae_title, source)
    ok = assoc.is_established and assoc.send_c_echo().Status == 0x0000
    if assoc.is_established:
        assoc.release()
    return ok


@pytest.fixture
def stored(settings, corpus):
    """Start an SCP (allow-list: MODALITY, IDLER, OTHER…) on ``settings`` changed by the keywords and
    send it one RDSR; returns the handle. Afterwards: that RDSR is still the one item, bytes unchanged."""
    settings.dicom_allowed_aets = ("MODALITY", "IDLER", "OTHER", "OTHER2", "OTHER3")
    started = []

    def start(**changes):
        for name, value in changes.items():
            setattr(settings, name, value)
        rec = Recorder()
        handle = start_scp(settings, rec)
        started.append(handle)
        assert send(handle.port, [corpus / RDSR]) == [0x0000]
        handle.item, handle.kept = rec[0], Inbox(settings.inbox_dir).read(rec[0].id)
        return handle

    yield start
    for handle in started:
        handle.stop()
    inbox = Inbox(settings.inbox_dir)
    assert [i.id for i in inbox.list()] == [started[0].item.id] and inbox.read(started[0].item.id) == started[0].kept


def test_connections_opened_and_closed_take_no_association_slot(stored):
    handle = stored()
    for _ in range(40):
        socket.create_connection(("127.0.0.1", handle.port)).close()
    started = time.monotonic()
    assert _echo_works(handle.port)  # the same address, at once: nothing waits out a timeout
    assert time.monotonic() - started < 3


def test_silent_connections_are_dropped_and_lock_out_no_one(settings, corpus):
    settings.dicom_acse_timeout = 1.0
    settings.dicom_allowed_aets = ("MODALITY",)
    handle = start_scp(settings, Recorder())
    try:
        silent = [socket.create_connection(("127.0.0.1", handle.port)) for _ in range(40)]
        assert _echo_works(handle.port, source="127.0.0.2")  # another peer is served meanwhile
        started = time.monotonic()
        assert all(closed_by_server(s, 4.0) for s in silent)  # no A-ASSOCIATE-RQ within the ACSE timeout
        assert time.monotonic() - started < 5
        for s in silent:
            s.close()
        assert _echo_works(handle.port)
    finally:
        handle.stop()


def test_associations_limited_per_address_per_ae_and_in_total(stored):
    handle = stored(dicom_max_associations_per_peer=3, dicom_max_associations=5)
    idle = [_associate(handle.port, "IDLER") for _ in range(3)]
    assert all(a.is_established for a in idle)
    assert _rejected_for_local_limit(_associate(handle.port, "OTHER"))  # 4th from 127.0.0.1
    assert _rejected_for_local_limit(_associate(handle.port, "IDLER", "127.0.0.3"))  # 4th of IDLER
    others = [_associate(handle.port, "MODALITY", "127.0.0.2"), _associate(handle.port, "OTHER2", "127.0.0.4")]
    assert all(a.is_established for a in others)
    assert _rejected_for_local_limit(_associate(handle.port, "OTHER3", "127.0.0.5"))  # 6th in all
    for a in others:
        a.release()
    assert _echo_works(handle.port, "MODALITY", "127.0.0.2")  # released slots are free again
    for a in idle:
        a.release()
    assert _echo_works(handle.port, "OTHER")


def test_idle_associations_are_released_after_the_network_timeout(stored):
    handle = stored(dicom_max_associations_per_peer=3, dicom_network_timeout=1.0)
    idle = [_associate(handle.port, "IDLER") for _ in range(3)]
    assert all(a.is_established for a in idle)
    assert _rejected_for_local_limit(_associate(handle.port, "OTHER"))
    deadline = time.monotonic() + 10
    while any(a.is_established for a in idle) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(a.is_established for a in idle), "idle associations outlived the network timeout"
    while not _echo_works(handle.port, "OTHER"):  # 127.0.0.1 is served again once the server has closed them
        assert time.monotonic() < deadline, "the aborted idle associations still hold their slots"
        time.sleep(0.2)


def test_a_pdu_length_no_pdu_may_have_closes_the_connection(stored):
    handle = stored()
    sock = socket.create_connection(("127.0.0.1", handle.port))
    sock.sendall(b"\x01\x00" + struct.pack(">I", 0xFFFFFF00) + b"\x00" * 65536)  # A-ASSOCIATE-RQ of ~4 GiB
    assert closed_by_server(sock, 2.0)  # long before the ACSE timeout (10 s)
    sock.close()
    assert _echo_works(handle.port)


@pytest.mark.parametrize("header", [0x01, 0x00], ids=["command-fragments", "dataset-without-command"])
def test_endless_fragments_outside_a_c_store_data_set_abort_the_association(stored, header):
    handle = stored()
    assoc = _associate(handle.port, "MODALITY")
    assert assoc.is_established
    cx = assoc.accepted_contexts[0].context_id
    fragment = bytes([cx, header]) + b"\0" * 100_000  # PS3.8 E.1: context id, message control header, data
    pdu = b"\x04\x00" + struct.pack(">I", 4 + len(fragment)) + struct.pack(">I", len(fragment)) + fragment
    sock = assoc.dul.socket.socket
    deadline = time.monotonic() + 5
    try:
        for _ in range(30):  # 3 MB: past the command set (64 KiB) and other data set (1 MiB) bounds
            sock.sendall(pdu)
    except OSError:
        pass  # aborted while sending
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.1)
    assert assoc.is_aborted
    assert _echo_works(handle.port)


def test_pynetdicom_internals_the_guard_relies_on():
    """Canary: a pynetdicom upgrade that renames these breaks the guard; this fails first, loudly."""
    from pynetdicom.acse import ACSE
    from pynetdicom.dimse import DIMSEServiceProvider
    from pynetdicom.dimse_messages import DIMSEMessage
    from pynetdicom.dul import DULServiceProvider
    from pynetdicom.transport import AssociationSocket

    assert callable(DIMSEServiceProvider.receive_primitive) and callable(ACSE._negotiate_as_acceptor)
    assert callable(AssociationSocket.recv) and callable(ACSE.send_reject)
    msg = DIMSEMessage()
    assert hasattr(msg, "_data_set_path") and hasattr(msg, "data_set")
    assert "to_user_queue" in DULServiceProvider.__init__.__code__.co_names
