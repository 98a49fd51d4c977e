"""Store: a transaction records what it changed (type, id, version, previous version), the hand-off
of the rules stage after commit."""
from __future__ import annotations

from dacs_fhir.store import Change


def patient(mrn: str, family: str = "Curie") -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": mrn}],
            "name": [{"family": family}]}


def test_create_update_delete_are_recorded_once_each(store):
    with store.transaction() as tx:
        a = tx.create(patient("A")).resource["id"]
        b = tx.create(patient("B")).resource["id"]
        tx.update("Patient", a, {**patient("A", "Sklodowska"), "id": a})  # same transaction: still a create
        assert tx.changes == [Change("Patient", a, 2, None, "create"), Change("Patient", b, 1, None, "create")]
    with store.transaction() as tx:
        tx.update("Patient", a, {**patient("A", "Curie"), "id": a})
        tx.update("Patient", b, {**patient("B"), "id": b})  # same content: no new version, no change
        tx.delete("Patient", a)
        assert tx.changes == [Change("Patient", a, 4, 2, "delete")]


def test_batch_entry_that_fails_leaves_no_change(store):
    with store.transaction() as tx:
        kept = tx.create(patient("K")).resource["id"]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("C"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "not-a-date"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {**patient("K", "New"), "id": kept}, "request": {"method": "PUT", "url": f"Patient/{kept}"}},
    ]}
    with store.transaction() as tx:
        response = tx.process_bundle(bundle)
        statuses = [e["response"]["status"][:3] for e in response["entry"]]
        assert statuses == ["201", "422", "200"]
        created = response["entry"][0]["response"]["location"].split("/")[1]
        assert tx.changes == [Change("Patient", created, 1, None, "create"), Change("Patient", kept, 2, 1, "update")]


def test_change_travels_as_json_list():
    c = Change("Observation", "x", 3, 2, "update")
    assert Change.from_list(c.as_list()) == c
