"""The DICOM Storage SCP over loopback: pynetdicom and dcmtk senders, raw storage in the inbox,
status codes (0xA700 when the inbox cannot write), calling-AE allow-list, DICOM TLS, and the
path to FHIR through the pipeline (including a server killed in the middle of a stream)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)
from pynetdicom import AE, _config
from pynetdicom.dsutils import split_dataset
from pynetdicom.sop_class import Verification

from dacs_fhir.inbox import Inbox
from dacs_fhir.listeners.dicom_scp import OUT_OF_RESOURCES, start_scp

pytestmark = pytest.mark.integration
SUMMARY = "http://loinc.org|73569-6"


def dcmtk(tool: str) -> str:
    """Path of dcmtk's ``tool`` (pynetdicom installs same-named apps into the venv)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = Path(folder) / tool
        if path.is_file() and os.access(path, os.X_OK):
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout
            if "dcmtk" in out.lower():
                return str(path)
    pytest.skip(f"dcmtk {tool} not installed (apt-get install dcmtk, or .ci/install-peers.sh)")


class Recorder:
    """``on_stored`` callback that remembers the items it was handed."""

    def __init__(self):
        self.items = []

    def __call__(self, item):
        self.items.append(item)


@pytest.fixture
def scp(settings):
    rec = Recorder()
    handle = start_scp(settings, rec)
    handle.recorder = rec
    handle.inbox = Inbox(settings.inbox_dir)
    yield handle
    handle.stop()


def sender(*files: Path, ae_title: str = "MODALITY") -> AE:
    ae = AE(ae_title=ae_title)
    seen = set()
    for f in files:
        meta = pydicom.dcmread(f, stop_before_pixels=True).file_meta
        pair = (meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
        if pair not in seen:
            seen.add(pair)
            ae.add_requested_context(*pair)
    return ae


def send_files(port: int, files: list[Path], ae_title: str = "MODALITY", tls=None) -> list[int]:
    """Send each file as it is on disk (no re-encoding); returns the C-STORE statuses."""
    ae = sender(*files, ae_title=ae_title)
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # stream the file's bytes after its meta, unparsed
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="DACS", tls_args=tls)
        assert assoc.is_established, "association not established"
        statuses = [assoc.send_c_store(f).Status for f in files]
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses


def item_of(inbox: Inbox, uid: str):
    """The one inbox item received under SOP Instance UID ``uid`` (metadata: never its key)."""
    (item,) = inbox.find("dicom", sop_instance_uid=str(uid))
    return item


def body(data_or_path) -> bytes:
    """The encoded dataset without preamble and file meta."""
    raw = data_or_path.read_bytes() if isinstance(data_or_path, Path) else data_or_path
    assert raw[128:132] == b"DICM" and raw[132:136] == b"\x02\x00\x00\x00"
    group_length = int.from_bytes(raw[140:144], "little")  # (0002,0000) UL, PS3.10 7.1
    return raw[144 + group_length:]


def test_c_echo(scp):
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="DACS")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_pynetdicom_scu_corpus_stored_raw_by_sop_instance_uid(scp, corpus):
    files = sorted((corpus / "rdsr").glob("*.dcm")) + sorted((corpus / "images").glob("*.dcm"))
    files += sorted((corpus / "negative").glob("*.dcm"))
    assert send_files(scp.port, files) == [0x0000] * len(files)
    assert len(scp.recorder.items) == len(files)
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        # kept under the C-STORE's Affected SOP Instance UID: from the file meta when sent unparsed
        # (one vendor file's meta disagrees with its dataset)
        item = item_of(scp.inbox, ds.file_meta.MediaStorageSOPInstanceUID)
        assert item.meta["sop_class"] == ds.SOPClassUID
        assert item.meta["transfer_syntax"] == ds.file_meta.TransferSyntaxUID
        assert item.meta["calling_ae"] == "MODALITY"
        stored = scp.inbox.read(item.id)
        assert body(stored) == body(f), f.name
        assert pydicom.dcmread(BytesIO(stored)).SOPInstanceUID == ds.SOPInstanceUID  # dataset as sent


def test_dcmtk_storescu_with_nodelay(scp, corpus):
    files = sorted((corpus / "rdsr").glob("*.dcm"))
    run = subprocess.run(
        [dcmtk("storescu"), "-R", "-nh", "-aec", "DACS", "-aet", "STORESCU", "127.0.0.1", str(scp.port), *map(str, files)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    uids = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert {i.meta["sop_instance_uid"] for i in scp.recorder.items} == uids
    assert {i.meta["calling_ae"] for i in scp.recorder.items} == {"STORESCU"}
    for f in files:
        uid = pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
        assert pydicom.dcmread(scp.inbox.path(item_of(scp.inbox, uid).id)).SOPInstanceUID == uid


def _image(tmp_path: Path, syntax, pixel: bytes) -> Path:
    """A small CT image in ``syntax`` whose (encapsulated) pixel data is never decoded by the SCP."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.CTDIvol = "CT", 12.5
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = encapsulate([pixel]) if syntax.is_compressed else pixel
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, RLELossless, DeflatedExplicitVRLittleEndian], ids=str)
def test_compressed_and_deflated_objects_are_kept_as_sent(scp, tmp_path, syntax):
    pixel = b"\xff\xd8not-a-real-codestream\xff\xd9" if syntax.is_compressed else b"\x01\x02\x03\x04"
    path = _image(tmp_path, syntax, pixel)
    assert send_files(scp.port, [path]) == [0x0000]
    uid = pydicom.dcmread(path).SOPInstanceUID
    stored = scp.inbox.read(item_of(scp.inbox, uid).id)
    assert body(stored) == body(path)
    back = pydicom.dcmread(BytesIO(stored))
    assert back.file_meta.TransferSyntaxUID == syntax and float(back.CTDIvol) == 12.5


def test_non_dicom_payload_is_stored_raw_and_acknowledged(scp, tmp_path):
    # valid file meta, then bytes that are no DICOM dataset at all
    path = _image(tmp_path, ExplicitVRLittleEndian, b"\0\0\0\0")
    _, offset = split_dataset(path)
    junk = b"%PDF-1.4 this is not a dataset\n" * 20
    path.write_bytes(path.read_bytes()[:offset] + junk)
    uid = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta.MediaStorageSOPInstanceUID
    assert send_files(scp.port, [path]) == [0x0000]
    assert scp.inbox.read(item_of(scp.inbox, uid).id).endswith(junk)
    assert [i.meta["sop_instance_uid"] for i in scp.recorder.items] == [uid]


def test_inbox_write_failure_answers_out_of_resources(settings, tmp_path, corpus):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the inbox folder should be")
    rec = Recorder()
    handle = start_scp(settings, rec, inbox=Inbox(blocker))
    try:
        f = corpus / "rdsr" / "ct-philips-brilliance-bigbore-4dct.dcm"
        assert send_files(handle.port, [f]) == [OUT_OF_RESOURCES]
        assert rec.items == []
    finally:
        handle.stop()


def test_calling_ae_allow_list(settings, corpus):
    settings.dicom_allowed_aets = ("CT01", "DR02")
    handle = start_scp(settings, Recorder())
    try:
        ae = AE(ae_title="INTRUDER")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", handle.port, ae_title="DACS")
        assert assoc.is_rejected and not assoc.is_established
        f = corpus / "rdsr" / "ct-philips-brilliance-bigbore-4dct.dcm"
        assert send_files(handle.port, [f], ae_title="CT01") == [0x0000]
        assert [i.meta["calling_ae"] for i in Inbox(settings.inbox_dir).list()] == ["CT01"]
    finally:
        handle.stop()


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", "san.cnf", cwd=d)
    return d


def _client_tls(pki: Path, with_cert: bool):
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki / "ca.pem"))
    if with_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx, "127.0.0.1"


def test_tls_and_mutual_tls(settings, pki, corpus):
    settings.dicom_tls_cert, settings.dicom_tls_key = str(pki / "server.pem"), str(pki / "server.key")
    f = corpus / "rdsr" / "xa-philips-allura-xper.dcm"
    handle = start_scp(settings, Recorder())
    try:
        assert send_files(handle.port, [f], tls=_client_tls(pki, False)) == [0x0000]
        ae = AE(ae_title="PLAIN")  # a plain-TCP sender gets no association from a TLS port
        ae.add_requested_context(Verification)
        ae.acse_timeout = 5
        assert not ae.associate("127.0.0.1", handle.port, ae_title="DACS").is_established
    finally:
        handle.stop()
    settings.dicom_tls_ca = str(pki / "ca.pem")
    handle = start_scp(settings, Recorder())
    try:
        ae = AE(ae_title="NOCERT")
        ae.add_requested_context(Verification)
        ae.acse_timeout = 5
        assert not ae.associate("127.0.0.1", handle.port, ae_title="DACS", tls_args=_client_tls(pki, False)).is_established
        assert send_files(handle.port, [f], tls=_client_tls(pki, True)) == [0x0000]
        run = subprocess.run(
            [dcmtk("storescu"), "-R", "+tls", str(pki / "client.key"), str(pki / "client.pem"), "+cf", str(pki / "ca.pem"),
             "-aec", "DACS", "127.0.0.1", str(handle.port), str(corpus / "rdsr" / "ct-philips-brilliance-bigbore-4dct.dcm")],
            capture_output=True, text=True, timeout=60,
        )
        assert run.returncode == 0, run.stderr[-1500:]
        items = list(Inbox(settings.inbox_dir).list())
        assert len(items) == 3  # the first object, re-sent, is a second item beside the first
        assert len({i.meta["sop_instance_uid"] for i in items}) == 2 and len({i.sha256 for i in items}) == 2
    finally:
        handle.stop()


# ---- through the pipeline to FHIR --------------------------------------------------------------

def fresh_copies(src: Path, n: int, folder: Path) -> list[Path]:
    """``n`` copies of ``src``, each its own study (fresh study, series, SOP instance and event UIDs)."""
    from dacs_fhir.samples import renew_uids

    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(src)
    out = []
    for i in range(n):
        renew_uids(ds)
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def test_storescu_and_pynetdicom_to_fhir_observations(settings, corpus, tmp_path):
    import requests

    from dacs_fhir.commands.serve import Services

    settings.broker_url = None
    services = Services(settings, mllp=False).start()
    try:
        port = services.handles["dicom"].port
        by_dcmtk = [corpus / "rdsr" / n for n in ("ct-siemens-definition-flash-tap.dcm", "xa-philips-allura-xper.dcm",
                                                  "nm-siemens-biograph-vision-rrdsr.dcm")]
        run = subprocess.run([dcmtk("storescu"), "-R", "-aec", settings.ae_title, "127.0.0.1", str(port), *map(str, by_dcmtk)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "TCP_NODELAY": "1"})
        assert run.returncode == 0, run.stderr[-1500:]
        # three images of one study (legacy header extraction): one study-level summary
        image = pydicom.dcmread(corpus / "images" / "ct-philips-ingenuity-axial-image-ctdivol.dcm")
        images = []
        for i in range(3):
            image.SOPInstanceUID = image.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            images.append(tmp_path / f"image-{i}.dcm")
            image.save_as(images[-1], enforce_file_format=True)
        by_pynetdicom = [corpus / "rdsr" / "rf-ge-oec-super-c-mobile.dcm"]
        assert send_files(port, by_pynetdicom + images) == [0x0000] * 4
        services.pipeline.tasks.drain()
        base = f"http://127.0.0.1:{services.handles['http'].port}/fhir"
        for f in by_dcmtk + by_pynetdicom + images[:1]:
            study = pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID
            bundle = requests.get(f"{base}/ImagingStudy", params={"identifier": f"urn:dicom:uid|urn:oid:{study}"}, timeout=30).json()
            assert len(bundle.get("entry", [])) == 1, f.name
            ref = f"ImagingStudy/{bundle['entry'][0]['resource']['id']}"
            obs = requests.get(f"{base}/Observation", params={"code": SUMMARY, "part-of": ref}, timeout=30).json()
            assert len(obs.get("entry", [])) == 1, f.name
        obs = requests.get(f"{base}/Observation", params={"code": SUMMARY}, timeout=30).json()
        assert obs.get("total", len(obs["entry"])) == 5
        dlps = [c["valueQuantity"]["value"] for e in obs["entry"] for c in e["resource"].get("component", [])
                if any(cd["code"] == "113813" for cd in c["code"]["coding"])]
        assert pytest.approx(724.52) in dlps, "DLP total of the Siemens Flash RDSR (MANIFEST)"
    finally:
        services.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dacs_fhir", "serve", "--no-http", "--no-mllp"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dacs_fhir", "worker"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_port(port: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {port}")


def _wait_processed(inbox: Inbox, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(True for _ in inbox.list(status="pending")):
            return
        time.sleep(0.5)
    raise TimeoutError("inbox items still pending")


def _stream(port: int, files: list[Path], stop_after: int, kill) -> set[str]:
    """Send ``files`` on one association; call ``kill`` after ``stop_after`` successes; return acknowledged UIDs."""
    ae = sender(files[0])
    ae.dimse_timeout = ae.acse_timeout = 10
    acked: set[str] = set()
    assoc = ae.associate("127.0.0.1", port, ae_title="DACS")
    assert assoc.is_established
    for i, f in enumerate(files):
        if i == stop_after:
            kill()
        if not assoc.is_established:
            break
        status = assoc.send_c_store(f)
        if status and status.Status == 0x0000:
            acked.add(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
    if assoc.is_established:
        assoc.release()
    return acked


def _study_counts(settings) -> tuple[Counter, Counter]:
    """ImagingStudy resources per Study Instance UID, and dose summaries per ImagingStudy."""
    from dacs_fhir.store import Store

    store = Store(settings.database_url)
    studies, summaries = Counter(), Counter()
    with store.transaction() as tx:
        for rtype, params, counter in (("ImagingStudy", [], studies), ("Observation", [("code", SUMMARY)], summaries)):
            offset = 0
            while True:
                page = tx.search(rtype, params, count=100, offset=offset).resources
                for r in page:
                    if rtype == "ImagingStudy":
                        counter.update(i["value"].removeprefix("urn:oid:") for i in r.get("identifier", []) if i.get("system") == "urn:dicom:uid")
                    else:
                        counter.update(p["reference"] for p in r.get("partOf", []))
                if len(page) < 100:
                    break
                offset += 100
    return studies, summaries


@pytest.mark.timeout(900)
def test_killed_mid_stream_every_acknowledged_object_stored_once(settings, corpus, tmp_path):
    """500 objects; the process that runs the tasks is killed half-way; after restart each acknowledged object is stored once."""
    # an angiography RDSR with 8 events, read quickly by the sender: mapping it takes longer than
    # receiving it, so work is left undone at the kill
    files = fresh_copies(corpus / "rdsr" / "xa-siemens-axiom-artis-zee.dcm", 500, tmp_path / "stream")
    port = _free_port()
    env = {**os.environ, "DACS_DATA_DIR": str(settings.data_dir), "DACS_DATABASE_URL": settings.database_url,
           "DACS_DICOM": f"127.0.0.1:{port}", "DACS_AE_TITLE": "DACS"}
    if settings.broker_url:
        env["DACS_BROKER_URL"] = settings.broker_url
        env["DACS_QUEUE"] = f"scp-fault-{port}"
    else:
        env.pop("DACS_BROKER_URL", None)
    log = tmp_path / "server.log"
    server = _serve(env, log)
    worker = None
    try:
        _wait_port(port)  # the schema exists once the SCP listens: the worker must not race its migration
        worker = _worker(env, log) if settings.broker_url else None
        victim = {"p": worker or server}
        def kill():
            end = time.monotonic() + 120
            while worker is not None and not any(True for _ in Inbox(settings.inbox_dir).list(status="done")):
                assert time.monotonic() < end, "the worker processed nothing"
                time.sleep(0.2)  # kill the worker while it works, not while it starts
            os.killpg(victim["p"].pid, signal.SIGKILL)

        acked = _stream(port, files, 250, kill)
        victim["p"].wait(timeout=30)
        assert 250 <= len(acked) <= 500
        inbox = Inbox(settings.inbox_dir)
        stored = {i.meta.get("sop_instance_uid") for i in inbox.list(kind="dicom")}
        assert acked <= stored, "an acknowledged object is not in the inbox"
        if worker is None:  # mapping is slower than receiving: the kill left work undone
            assert any(True for _ in inbox.list(status="pending")), "nothing was pending at the kill"
        if worker is not None:  # the SCP kept acknowledging; the worker restarts and the broker redelivers
            worker = _worker(env, log)
        else:  # the SCP died with the tasks; restart re-enqueues what is pending, then the rest is re-sent
            server = _serve(env, log)
            _wait_port(port)
            rest = [f for f in files if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID not in acked]
            acked |= _stream(port, rest, len(rest) + 1, lambda: None)
        _wait_processed(Inbox(settings.inbox_dir))
        studies, summaries = _study_counts(settings)
        uids = {pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID: pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
                for f in files}
        acked_studies = {s for s, sop in uids.items() if sop in acked}
        assert acked_studies <= set(studies), "an acknowledged object is missing from the store"
        assert all(n == 1 for n in studies.values()), "an object was stored twice"
        assert all(n == 1 for n in summaries.values()) and len(summaries) == len(studies)
    finally:
        for p in (server, worker):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)


# ---- the operator's view: dacs-fhir inbox list | show | replay ---------------------------------

def _cli(monkeypatch, capsys, settings, *argv) -> tuple[int, str]:
    from dacs_fhir.cli import main

    monkeypatch.setenv("DACS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DACS_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("DACS_BROKER_URL", raising=False)
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().out


def test_inbox_list_and_show_a_received_object(scp, settings, corpus, monkeypatch, capsys):
    f = corpus / "rdsr" / "xa-siemens-axiom-artis-zee.dcm"
    assert send_files(scp.port, [f]) == [0x0000]
    uid = pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
    item_id = item_of(scp.inbox, uid).id
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "list", "--status", "pending")
    assert rc == 0 and out.split("\t")[:2] == [item_id, "pending"]
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "show", item_id)
    shown = json.loads(out)
    assert rc == 0 and shown["meta"]["calling_ae"] == "MODALITY" and shown["size"] == len(scp.inbox.read(item_id))
    assert _cli(monkeypatch, capsys, settings, "inbox", "show", "dicom/1.2.3.4")[0] == 1


@pytest.mark.parametrize("bad", ["../../../etc/passwd", "dicom/..", "dicom/../../../tmp/pwn", "/etc/passwd"])
def test_inbox_show_and_replay_refuse_ids_outside_the_inbox(settings, monkeypatch, capsys, bad):
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "show", bad)
    assert rc == 2 and out == ""
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "replay", bad)
    assert rc == 2 and out == ""


def test_inbox_purge_removes_processed_items_past_retention_never_pending_ones(scp, settings, corpus, monkeypatch, capsys):
    files = [corpus / "rdsr" / "xa-siemens-axiom-artis-zee.dcm", corpus / "rdsr" / "ct-toshiba-aquilion-precision-dosecheck.dcm"]
    assert send_files(scp.port, files) == [0x0000, 0x0000]
    done, pending = scp.recorder.items
    scp.inbox.mark(done.id, "done")
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "purge")
    assert rc == 0 and out == ""  # within the 30 days of DACS_INBOX_RETENTION_DAYS
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "purge", "--older-than", "0", "--dry-run")
    assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == [done.id]
    assert scp.inbox.read(done.id)  # a dry run removes nothing
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "purge", "--older-than", "0", "--status", "failed")
    assert rc == 0 and out == ""
    rc, out = _cli(monkeypatch, capsys, settings, "inbox", "purge", "--older-than", "0")
    assert rc == 0 and [line.split("\t")[0] for line in out.splitlines()] == [done.id]
    assert [i.id for i in scp.inbox.list()] == [pending.id] and body(scp.inbox.read(pending.id)) == body(files[1])
    with pytest.raises(KeyError):
        scp.inbox.get(done.id)


def test_corrupt_object_fails_with_reason_then_replay_after_fix_imports_once(settings, corpus, tmp_path, monkeypatch, capsys):
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.errors import MappingError
    from dacs_fhir.mappers import dicom as dicom_mapper

    settings.broker_url = None
    pipeline = build_pipeline(settings)
    handle = start_scp(settings, pipeline.enqueue, inbox=pipeline.inbox)
    real_parse = dicom_mapper.parse
    try:
        junk = _image(tmp_path, ExplicitVRLittleEndian, b"\0\0\0\0")
        _, offset = split_dataset(junk)
        junk.write_bytes(junk.read_bytes()[:offset] + b"\x08\x00\x16\x00UI\xff\xffnot dicom")
        junk_uid = pydicom.dcmread(junk, stop_before_pixels=True, force=True).file_meta.MediaStorageSOPInstanceUID
        good = corpus / "rdsr" / "ct-toshiba-aquilion-precision-dosecheck.dcm"
        good_uid = pydicom.dcmread(good, stop_before_pixels=True).SOPInstanceUID

        def broken(source):  # a mapping bug that a later release fixes
            raise MappingError("unsupported unit in TID 10011")

        monkeypatch.setattr(dicom_mapper, "parse", broken)
        assert send_files(handle.port, [junk, good]) == [0x0000, 0x0000]
        pipeline.tasks.drain()
        rc, out = _cli(monkeypatch, capsys, settings, "inbox", "list", "--status", "failed")
        rows = {line.split("\t")[0]: line.split("\t")[-1] for line in out.splitlines()}
        junk_id, good_id = item_of(pipeline.inbox, junk_uid).id, item_of(pipeline.inbox, good_uid).id
        assert set(rows) == {junk_id, good_id} and all(rows.values())
        monkeypatch.setattr(dicom_mapper, "parse", real_parse)  # the fix
        rc, out = _cli(monkeypatch, capsys, settings, "inbox", "replay", "--failed")
        results = {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines()}
        assert results == {junk_id: "rejected", good_id: "imported"} and rc == 1
        rc, out = _cli(monkeypatch, capsys, settings, "inbox", "replay", good_id)
        assert rc == 0 and out.split("\t")[1].strip() == "duplicate"
        with pipeline.store.transaction() as tx:
            assert tx.search("Observation", [("code", SUMMARY)]).total == 1
        assert pipeline.inbox.get(junk_id).reason  # still there, with its reason
    finally:
        handle.stop()
