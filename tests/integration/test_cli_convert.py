"""``dacs-fhir convert``: exit codes, one-line rejections, bundles on stdout or in --out."""
import json
import subprocess
import sys

import pytest


def convert(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dacs_fhir", "convert", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_one_file_prints_a_transaction_bundle(corpus):
    r = convert(corpus / "rdsr" / "ct-siemens-definition-flash-tap.dcm")
    assert r.returncode == 0, r.stderr
    bundle = json.loads(r.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    summary = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == "73569-6"]
    assert len(summary) == 1
    dlp = [c for c in summary[0]["component"] if c["code"]["coding"][0]["code"] == "113813"]
    assert dlp[0]["valueQuantity"]["value"] == pytest.approx(724.52) and dlp[0]["valueQuantity"]["code"] == "mGy.cm"


def test_folder_with_out_dir_and_rejections(corpus, tmp_path):
    out = tmp_path / "out"
    r = convert(corpus / "rdsr", corpus / "negative", tmp_path / "missing.dcm", "--out", out)
    assert r.returncode == 1
    rejected = [line for line in r.stderr.splitlines() if "rejected" in line]
    assert len(rejected) == 2, r.stderr  # the non-dose SR and the missing file
    assert "Traceback" not in r.stderr
    assert any("sr-agfa-impax-enhanced-sr-not-dose.dcm" in line for line in rejected)
    written = sorted(p.name for p in out.glob("*.json"))
    assert len(written) == len(list((corpus / "rdsr").glob("*.dcm")))
    for p in out.glob("*.json"):
        assert json.loads(p.read_text())["type"] == "transaction"


def test_garbage_and_non_dicom_are_rejected_without_traceback(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 10 + b"not dicom at all" * 20)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    r = convert(junk, empty, "--out", tmp_path / "o")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert len([line for line in r.stderr.splitlines() if "rejected" in line]) == 2


def test_several_inputs_without_out_is_a_usage_error(tmp_path):
    r = convert(tmp_path / "a", tmp_path / "b")
    assert r.returncode == 2 and "--out" in r.stderr
