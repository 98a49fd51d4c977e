"""Every channel's committed changes reach the rules stage once, after commit, off the request path
(docs/architecture.md): FHIR REST writes, DICOM objects, imported FHIR JSON; a refused write hands
off nothing."""
from __future__ import annotations

import json
import threading

import pytest
import requests

from dacs_fhir.registry import rules as rule_registry
from dacs_fhir.samples import sample_objects
from dacs_fhir.store import Change


@pytest.fixture
def seen():
    """A rule that records the change sets it is given, and the thread it ran on."""
    got: list = []

    def record(change_set, store):
        got.append((change_set, threading.current_thread().name))

    rule_registry.add("test-recorder", record)
    yield got
    rule_registry.remove("test-recorder")


@pytest.fixture
def api(settings):
    from dacs_fhir.app import create_app
    from dacs_fhir.composition import build_pipeline
    from dacs_fhir.listeners.http_server import start_http

    settings.broker_url = None  # in-process task layer: the rules run on its thread
    pipeline = build_pipeline(settings)
    server = start_http(create_app(pipeline), "127.0.0.1", 0)
    yield pipeline, f"{server.url}/fhir"
    server.stop()
    pipeline.tasks.shutdown()


H = {"Content-Type": "application/fhir+json"}


def test_rest_writes_hand_off_their_changes_after_commit(api, seen):
    pipeline, base = api
    pat = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}]}
    r = requests.post(f"{base}/Patient", data=json.dumps(pat), headers=H, timeout=30)
    assert r.status_code == 201
    rid = r.json()["id"]
    r = requests.put(f"{base}/Patient/{rid}", data=json.dumps({**pat, "id": rid, "gender": "female"}), headers=H, timeout=30)
    assert r.status_code == 200
    r = requests.post(f"{base}/Patient", data=json.dumps({"resourceType": "Patient", "birthDate": "yesterday"}), headers=H, timeout=30)
    assert r.status_code in (400, 422)  # refused: nothing committed, nothing handed off
    assert requests.delete(f"{base}/Patient/{rid}", timeout=30).status_code in (200, 204)
    pipeline.tasks.drain()
    assert [list(cs.changes) for cs, _ in seen] == [
        [Change("Patient", rid, 1, None, "create")],
        [Change("Patient", rid, 2, 1, "update")],
        [Change("Patient", rid, 3, 2, "delete")],
    ]
    assert all(cs.source.startswith("fhir/") for cs, _ in seen)
    assert all(thread.startswith("dacs-task") for _, thread in seen)  # not on the request thread


def test_dicom_objects_and_imports_hand_off_their_changes(settings, seen):
    from dacs_fhir.composition import build_pipeline

    settings.broker_url = None
    pipeline = build_pipeline(settings)
    name, data = next(iter(sample_objects()))
    item = pipeline.receive("dicom", data)
    pipeline.tasks.drain()
    assert len(seen) == 1
    change_set = seen[0][0]
    assert change_set.source == item.id
    types = {c.resource_type for c in change_set.changes}
    assert {"Observation", "ImagingStudy", "Patient", "Device"} <= types
    assert all(c.previous_version is None and c.method == "create" for c in change_set.changes)
    pipeline.receive("dicom", data)  # the same object again: a duplicate, nothing changed, nothing handed off
    pipeline.tasks.drain()
    assert len(seen) == 1
    imported = pipeline.inbox.put("file", json.dumps({"resourceType": "Practitioner", "name": [{"family": "Roentgen"}]}).encode())
    assert pipeline.process(imported.id).status == "imported"
    pipeline.tasks.drain()
    assert [(c.resource_type, c.method) for c in seen[-1][0].changes] == [("Practitioner", "create")]
    pipeline.tasks.shutdown()


def test_no_rule_registered_queues_no_task(settings, monkeypatch):
    from dacs_fhir.composition import build_pipeline

    settings.broker_url = None
    pipeline = build_pipeline(settings)
    calls = []
    monkeypatch.setattr(pipeline.tasks, "enqueue_rules", calls.append)
    name, data = next(iter(sample_objects()))
    pipeline.process(pipeline.inbox.put("file", data).id)
    assert calls == []
