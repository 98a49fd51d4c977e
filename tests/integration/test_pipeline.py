"""The ingest pipeline end to end: inbox first, map, store, merge a study's reports, idempotence.

With DACS_BROKER_URL set, processing runs in a real ``dacs-fhir worker`` subprocess on that broker.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from dacs_fhir.composition import build_pipeline
from dacs_fhir.pipeline import DUPLICATE, IMPORTED, REJECTED, UPDATED

SUMMARY = "http://loinc.org|73569-6"


@pytest.fixture
def pipeline(settings):
    settings.broker_url = None  # processed synchronously in these tests
    return build_pipeline(settings)


def summaries(pipeline, **params):
    with pipeline.store.transaction() as tx:
        res = tx.search("Observation", [("code", SUMMARY), *params.items()])
    return res.resources


def component(obs, code):
    for c in obs.get("component", []):
        if any(cd["code"] == code for cd in c["code"]["coding"]):
            return c.get("valueQuantity", {}).get("value")
    return None


def ingest(pipeline, path):
    item = pipeline.inbox.put("file", path.read_bytes(), meta={"name": path.name})
    return pipeline.process(item.id)


def test_cumulative_reports_of_one_study_become_one_summary(pipeline, corpus):
    files = [corpus / "rdsr" / f"ct-siemens-somatom-confidence-cumulative-{i}of3.dcm" for i in (1, 2, 3)]
    outcomes = [ingest(pipeline, f) for f in files]
    assert [o.status for o in outcomes] == [IMPORTED, UPDATED, UPDATED]
    found = summaries(pipeline)
    assert len(found) == 1
    assert component(found[0], "113813") == pytest.approx(236.09)
    assert int(found[0]["meta"]["versionId"]) >= 2  # the corrected report became a new version
    # re-importing an older cumulative report changes nothing
    assert ingest(pipeline, files[0]).status in (DUPLICATE, UPDATED)
    again = summaries(pipeline)
    assert component(again[0], "113813") == pytest.approx(236.09)
    with pipeline.store.transaction() as tx:
        events = tx.search("Observation", [("part-of", found[0]["partOf"][0]["reference"])]).resources
    assert len([e for e in events if e["code"]["coding"][0]["code"] != "73569-6"]) == 3


def test_same_object_twice_is_a_duplicate(pipeline, corpus):
    path = corpus / "rdsr" / "xa-philips-allura-xper.dcm"
    assert ingest(pipeline, path).status == IMPORTED
    assert ingest(pipeline, path).status == DUPLICATE
    assert len(summaries(pipeline)) == 1


def test_demo_samples_load_once(pipeline):
    from dacs_fhir.samples import sample_objects

    def load():
        return [pipeline.process(pipeline.inbox.put("file", data).id).status for _, data in sample_objects()]

    assert load() == [IMPORTED] * 4
    assert load() == [DUPLICATE] * 4
    assert len(summaries(pipeline)) == 4


def test_warm_up_maps_the_samples_and_keeps_nothing(pipeline):
    pipeline.warm_up()
    with pipeline.store.transaction() as tx:
        assert tx.history().total == 0
    assert list(pipeline.inbox.list()) == []


def test_rejected_object_is_kept_raw_with_its_reason(pipeline, corpus):
    path = corpus / "negative" / "sr-agfa-impax-enhanced-sr-not-dose.dcm"
    out = ingest(pipeline, path)
    assert out.status == REJECTED and out.reason
    failed = list(pipeline.inbox.list(status="failed"))
    assert len(failed) == 1 and failed[0].reason == out.reason
    assert pipeline.inbox.read(failed[0].id) == path.read_bytes()
    assert summaries(pipeline) == []


def test_every_corpus_dose_object_is_stored_and_searchable(pipeline, corpus):
    paths = sorted((corpus / "rdsr").glob("*.dcm")) + sorted((corpus / "images").glob("*.dcm"))
    statuses = [ingest(pipeline, p).status for p in paths]
    assert REJECTED not in statuses
    truth = json.loads((corpus / "ground_truth.json").read_text())
    study_uids = {f["dicom"]["StudyInstanceUID"] for f in truth["files"] if f["category"] in ("rdsr", "images")}
    found = summaries(pipeline, _count="200")
    # one dose summary per study (each corpus study has one kind of report from one device)
    assert len(found) == len(study_uids)
    assert len({o["partOf"][0]["reference"] for o in found}) == len(study_uids)


@pytest.mark.skipif(not os.environ.get("DACS_BROKER_URL"), reason="needs DACS_BROKER_URL (a real Celery worker)")
def test_real_celery_worker_processes_received_objects(settings, corpus, tmp_path):
    env = dict(os.environ, DACS_DATABASE_URL=settings.database_url, DACS_DATA_DIR=str(settings.data_dir),
               DACS_BROKER_URL=settings.broker_url, DACS_QUEUE=f"dacs-test-{uuid.uuid4().hex[:8]}")
    settings.queue = env["DACS_QUEUE"]
    p = build_pipeline(settings)
    worker = subprocess.Popen([sys.executable, "-m", "dacs_fhir", "worker", "--hostname", f"{env['DACS_QUEUE']}@localhost"],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"))
    try:
        paths = sorted((corpus / "rdsr").glob("ct-*.dcm"))
        items = [p.receive("dicom", f.read_bytes(), key=f.stem) for f in paths]
        deadline = time.time() + 120
        while time.time() < deadline and any(p.inbox.get(i.id).status == "pending" for i in items):
            time.sleep(0.5)
        assert all(p.inbox.get(i.id).status == "done" for i in items), (tmp_path / "worker.log").read_text()[-2000:]
        assert len(summaries(p)) >= 5
    finally:
        worker.terminate()
        worker.wait(timeout=30)
