"""Backfill from a real PACS: Orthanc (Debian package) on loopback ports with its own configuration,
filled with the corpus over its REST API, then queried (C-FIND) and pulled from (C-MOVE, C-GET)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pydicom
import pytest

from dacs_fhir.inbox import Inbox
from dacs_fhir.listeners.dicom_scp import StoreHandler, start_scp
from dacs_fhir.pacs import PacsClient, PacsError, Peer, pull

pytestmark = pytest.mark.integration
SINCE = date(2018, 1, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A private Orthanc filled with the corpus; yields its peer, our SCP port and what it holds."""
    binary = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if binary is None:
        pytest.skip("Orthanc not installed (apt-get install orthanc, or .ci/install-peers.sh)")
    root = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    if not (root / "MANIFEST.md").is_file():
        pytest.skip(f"vendor corpus not found at {root}")
    import requests

    tmp = tmp_path_factory.mktemp("orthanc")
    dicom_port, http_port, scp_port = _free_port(), _free_port(), _free_port()
    config = {
        "Name": "dacs-test-pacs",
        "StorageDirectory": str(tmp / "db"),
        "IndexDirectory": str(tmp / "db"),
        "Plugins": [],
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,  # REST from loopback only
        "AuthenticationEnabled": False,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "DicomAet": "TESTPACS",
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomCheckModalityHost": True,  # only the registered AE, from 127.0.0.1
        "DicomModalities": {"dacs": {"AET": "DACS", "Host": "127.0.0.1", "Port": scp_port}},
        "SaveJobs": False,
        "ConcurrentJobs": 1,
    }
    (tmp / "orthanc.json").write_text(json.dumps(config))
    log = (tmp / "orthanc.log").open("wb")
    proc = subprocess.Popen([binary, str(tmp / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{http_port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited: {(tmp / 'orthanc.log').read_text()[-1500:]}")
        else:
            pytest.fail("Orthanc did not start")
        held = []
        for f in sorted(root.glob("*/*.dcm")):
            r = requests.post(f"{base}/instances", data=f.read_bytes(), timeout=30)
            if r.ok:
                held.append(pydicom.dcmread(f, stop_before_pixels=True))
        assert len(held) >= 20, "Orthanc refused most of the corpus"
        yield {"peer": Peer("TESTPACS", "127.0.0.1", dicom_port), "scp_port": scp_port, "held": held, "base": base}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def expected(held, since: date, modality: str | None = None):
    """Studies from ``since`` on (optionally with ``modality``), their dose series and their objects."""
    studies = {}
    for ds in held:
        studies.setdefault(ds.StudyInstanceUID, []).append(ds)
    keep = {
        uid for uid, objs in studies.items()
        if str(objs[0].get("StudyDate") or "0") >= f"{since:%Y%m%d}" and (modality is None or any(o.Modality == modality for o in objs))
    }
    dose = [ds for ds in held if ds.StudyInstanceUID in keep
            and (ds.Modality == "SR" or "dose" in str(ds.get("SeriesDescription", "")).lower())]
    return keep, {(d.StudyInstanceUID, d.SeriesInstanceUID) for d in dose}, {d.SOPInstanceUID for d in dose}


@pytest.fixture
def our_settings(settings, orthanc):
    settings.dicom = ("127.0.0.1", orthanc["scp_port"])
    return settings


def test_move_pulls_the_dose_series_of_the_period(our_settings, orthanc):
    studies, series, sops = expected(orthanc["held"], SINCE)
    assert sops, "the corpus has dose objects after the cut-off"
    got = []
    scp = start_scp(our_settings, got.append)
    try:
        stages = []
        summary = pull(PacsClient(our_settings, orthanc["peer"]), SINCE, method="move", progress=lambda s, n: stages.append((s, n)))
    finally:
        scp.stop()
    assert summary.errors == [] and summary.failed == 0
    assert summary.studies == len(studies)
    assert summary.series == len(series)
    assert summary.completed == len(sops)
    assert {i.meta["sop_instance_uid"] for i in got} == sops
    assert {(i.meta["calling_ae"], i.meta["move_originator"]) for i in got} == {("TESTPACS", "DACS")}
    assert stages[0] == ("series", len(series)) and len(stages) == len(series) + 1
    # the objects arrive as the PACS holds them: readable, same SOP instance
    inbox = Inbox(our_settings.inbox_dir)
    for uid in sops:
        (item,) = inbox.find("dicom", sop_instance_uid=uid)  # the UID is metadata; the inbox makes the key
        assert pydicom.dcmread(inbox.path(item.id), stop_before_pixels=True).SOPInstanceUID == uid


def test_get_on_the_query_association(our_settings, orthanc):
    # CT studies since 2017: the corpus' dose screen ("Dose Info" secondary capture, modality CT)
    since = date(2017, 1, 1)
    studies, series, sops = expected(orthanc["held"], since, modality="CT")
    got = []
    handler = StoreHandler(Inbox(our_settings.inbox_dir), got.append)
    summary = pull(PacsClient(our_settings, orthanc["peer"]), since, modalities=["CT"], method="get", store_handler=handler)
    assert summary.studies == len(studies) >= 1
    assert summary.completed == len(sops) == len(got)
    assert {i.meta["sop_instance_uid"] for i in got} == sops
    assert {i.meta["calling_ae"] for i in got} == {"TESTPACS"}


def test_date_window_and_unknown_pacs(our_settings, orthanc):
    until = date(2018, 12, 31)
    client = PacsClient(our_settings, orthanc["peer"])
    found = {s.StudyInstanceUID for s in client.find_studies(SINCE, until)}
    want = {d.StudyInstanceUID for d in orthanc["held"] if "20180101" <= str(d.get("StudyDate") or "") <= "20181231"}
    assert found == want and want
    stranger = PacsClient(our_settings, Peer("NOTTHERE", "127.0.0.1", orthanc["peer"].port))
    with pytest.raises(PacsError):
        stranger.find_studies(SINCE)  # Orthanc checks the called AE title


def test_move_to_a_destination_the_pacs_does_not_know(our_settings, orthanc):
    _, series, _ = expected(orthanc["held"], SINCE)
    try:  # the standard's answer is 0xA801 (stops the pull); Orthanc 1.10 answers 0xC000 per series
        summary = pull(PacsClient(our_settings, orthanc["peer"]), SINCE, method="move", destination="NOBODY")
    except PacsError as err:
        assert "0xA801" in str(err)
    else:
        assert summary.completed == 0 and len(summary.errors) == len(series)
        assert all("failed with status 0x" in e for e in summary.errors)


def test_cli_pull_with_its_own_scp(our_settings, orthanc):
    studies, series, sops = expected(orthanc["held"], SINCE)
    env = {**os.environ, "DACS_DATA_DIR": str(our_settings.data_dir), "DACS_DATABASE_URL": our_settings.database_url,
           "DACS_DICOM": f"127.0.0.1:{orthanc['scp_port']}", "DACS_AE_TITLE": "DACS"}
    env.pop("DACS_BROKER_URL", None)
    run = subprocess.run([sys.executable, "-m", "dacs_fhir", "pacs", "pull", "--since", f"{SINCE}", "--listen", "-q",
                          "--pacs", str(orthanc["peer"])], env=env, capture_output=True, text=True, timeout=600)
    assert f"{len(studies)} studies, {len(series)} dose series: {len(sops)} objects retrieved" in run.stdout, run.stdout + run.stderr
    assert f"received {len(sops)} objects" in run.stdout
    items = list(Inbox(our_settings.inbox_dir).list(kind="dicom"))
    assert {i.meta["sop_instance_uid"] for i in items} == sops
    assert not [i for i in items if i.status == "pending"]
