"""``dacs-fhir import`` and ``dacs-fhir demo`` as an operator runs them (subprocesses, real sockets)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest


def _env(tmp_path, database_url, **extra):
    env = dict(os.environ, DACS_DATA_DIR=str(tmp_path / "data"), DACS_DATABASE_URL=database_url,
               DACS_HTTP="127.0.0.1:0", DACS_DICOM="127.0.0.1:0", DACS_MLLP="127.0.0.1:0", **extra)
    env.pop("DACS_BROKER_URL", None)  # these commands run their tasks in-process
    return env


def test_import_prints_a_summary_and_is_idempotent(tmp_path, database_url, corpus):
    env = _env(tmp_path, database_url)
    cmd = [sys.executable, "-m", "dacs_fhir", "import", str(corpus / "rdsr"), str(corpus / "negative")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    n_rdsr = len(list((corpus / "rdsr").glob("*.dcm")))
    assert first.returncode == 1  # the non-dose SR is rejected
    assert f"{n_rdsr + 1} files:" in first.stdout
    assert "1 rejected" in first.stdout and "sr-agfa-impax-enhanced-sr-not-dose.dcm" in first.stdout
    imported = int(re.search(r"(\d+) imported", first.stdout).group(1))
    updated = int(re.search(r"(\d+) updated", first.stdout).group(1))
    assert imported + updated == n_rdsr and updated == 2  # the cumulative Siemens 2of3 and 3of3
    again = subprocess.run(cmd + ["--allow-rejected"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert f"{n_rdsr} duplicate" in again.stdout
    assert "Traceback" not in first.stderr + again.stderr


def test_demo_serves_sample_dose_reports(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    proc = subprocess.Popen([sys.executable, "-m", "dacs_fhir", "demo", "--no-dicom", "--no-mllp"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = None
        deadline = time.time() + 240
        while time.time() < deadline and base is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"FHIR REST API on (http://\S+/fhir)", line)
            if m:
                base = m.group(1)
        assert base, "demo did not start"
        with urllib.request.urlopen(f"{base}/Observation?code=http://loinc.org|73569-6&_summary=count", timeout=30) as r:
            assert r.headers["Content-Type"].startswith("application/fhir+json")
            total = json.load(r)["total"]
        assert total >= 4  # the built-in samples, plus the corpus when present
        with urllib.request.urlopen(f"{base}/metadata", timeout=30) as r:
            assert json.load(r)["resourceType"] == "CapabilityStatement"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
