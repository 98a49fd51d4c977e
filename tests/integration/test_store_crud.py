"""Store: versioned create/read/update/delete, conditional interactions, history, validation (issue 3)."""
from __future__ import annotations

import pytest

from dacs_fhir.store import Store, errors


def patient(mrn: str = "MRN-1", family: str = "Curie") -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": mrn}],
            "name": [{"family": family, "given": ["Marie"]}], "gender": "female", "birthDate": "1967-11-07"}


def test_create_assigns_id_version_and_last_updated(store):
    with store.transaction() as tx:
        out = tx.create({**patient(), "id": "client-chosen"})
    res = out.resource
    assert out.status == "created"
    assert res["id"] != "client-chosen"
    assert res["meta"]["versionId"] == "1"
    assert res["meta"]["lastUpdated"].endswith("+00:00")
    with store.transaction() as tx:
        assert tx.read("Patient", res["id"]) == res


def test_update_keeps_every_version(store):
    with store.transaction() as tx:
        rid = tx.create(patient()).resource["id"]
    with store.transaction() as tx:
        out = tx.update("Patient", rid, {**patient(family="Sklodowska"), "id": rid}, if_match='W/"1"')
    assert (out.status, out.resource["meta"]["versionId"]) == ("updated", "2")
    with store.transaction() as tx:
        assert tx.read("Patient", rid)["name"][0]["family"] == "Sklodowska"
        assert tx.vread("Patient", rid, "1")["name"][0]["family"] == "Curie"
        assert tx.vread("Patient", rid, 2)["meta"]["versionId"] == "2"
        with pytest.raises(errors.NotFound):
            tx.vread("Patient", rid, "3")


def test_update_with_stale_if_match_is_a_version_conflict(store):
    with store.transaction() as tx:
        rid = tx.create(patient()).resource["id"]
        tx.update("Patient", rid, {**patient(family="B"), "id": rid})
    with store.transaction() as tx, pytest.raises(errors.VersionConflict) as err:
        tx.update("Patient", rid, {**patient(family="C"), "id": rid}, if_match="1")
    assert err.value.status == 412


def test_identical_update_makes_no_new_version(store):
    with store.transaction() as tx:
        rid = tx.create(patient()).resource["id"]
    with store.transaction() as tx:
        out = tx.update("Patient", rid, {**patient(), "id": rid})
    assert out.changed is False and out.resource["meta"]["versionId"] == "1"


def test_update_of_unknown_id_creates_it(store):
    with store.transaction() as tx:
        out = tx.update("Patient", "p-42", {**patient(), "id": "p-42"})
    assert (out.status, out.resource["id"], out.resource["meta"]["versionId"]) == ("created", "p-42", "1")


def test_delete_is_a_tombstone_version(store):
    with store.transaction() as tx:
        rid = tx.create(patient()).resource["id"]
    with store.transaction() as tx:
        tx.delete("Patient", rid)
    with store.transaction() as tx:
        with pytest.raises(errors.Gone) as gone:
            tx.read("Patient", rid)
        assert gone.value.status == 410
        with pytest.raises(errors.Gone):
            tx.vread("Patient", rid, "2")
        assert tx.vread("Patient", rid, "1")["id"] == rid
        assert tx.search("Patient", [("identifier", "urn:example:mrn|MRN-1")]).total == 0
        hist = tx.history("Patient", rid)
    assert [(e.method, e.versionId, e.resource is None) for e in hist.entries] == [("delete", "2", True), ("create", "1", False)]
    with store.transaction() as tx:  # a new version after the delete brings it back
        out = tx.update("Patient", rid, {**patient(), "id": rid})
    assert (out.status, out.resource["meta"]["versionId"]) == ("created", "3")


def test_unknown_resource_is_not_found(store):
    with store.transaction() as tx:
        with pytest.raises(errors.NotFound) as err:
            tx.read("Patient", "nope")
        assert err.value.status == 404
        with pytest.raises(errors.NotFound):
            tx.delete("Patient", "nope")


def test_conditional_create(store):
    with store.transaction() as tx:
        first = tx.create(patient(), if_none_exist="identifier=urn:example:mrn|MRN-1")
        again = tx.create(patient(), if_none_exist="identifier=urn:example:mrn|MRN-1")
        tx.create(patient(mrn="MRN-2", family="Curie"))
    assert (first.status, again.status) == ("created", "existing")
    assert again.resource["id"] == first.resource["id"]
    with store.transaction() as tx, pytest.raises(errors.PreconditionFailed):
        tx.create(patient(mrn="MRN-3"), if_none_exist="family=curie")


def test_conditional_update(store):
    with store.transaction() as tx:
        created = tx.conditional_update("Patient", "identifier=urn:example:mrn|MRN-9", patient(mrn="MRN-9"))
        updated = tx.conditional_update("Patient", "identifier=urn:example:mrn|MRN-9",
                                        patient(mrn="MRN-9", family="Joliot"))
        tx.create(patient(mrn="MRN-8", family="Joliot"))
    assert created.status == "created" and updated.status == "updated"
    assert updated.resource["id"] == created.resource["id"]
    assert updated.resource["meta"]["versionId"] == "2"
    with store.transaction() as tx, pytest.raises(errors.PreconditionFailed):
        tx.conditional_update("Patient", "family=joliot", patient(mrn="MRN-7"))


def test_invalid_resource_names_the_offending_path(store):
    bad = {"resourceType": "Observation", "code": {"text": "dose"}}
    with store.transaction() as tx, pytest.raises(errors.InvalidResource) as err:
        tx.create(bad)
    assert err.value.status == 422 and err.value.path == "Observation.status"
    with store.transaction() as tx, pytest.raises(errors.InvalidResource) as err:
        tx.create({"resourceType": "Observation", "status": "final", "code": {},
                   "component": [{"code": {}, "valueQuantity": {"value": "lots"}}]})
    assert err.value.path == "Observation.component[0].valueQuantity.value"
    with store.transaction() as tx, pytest.raises(errors.InvalidResource):
        tx.create({"resourceType": "NoSuchThing"})


def test_failed_transaction_rolls_back(store):
    with pytest.raises(errors.InvalidResource):
        with store.transaction() as tx:
            tx.create(patient(mrn="MRN-R"))
            tx.create({"resourceType": "Observation"})
    with store.transaction() as tx:
        assert tx.search("Patient", [("identifier", "MRN-R")]).total == 0


def test_history_type_and_system_level(store):
    with store.transaction() as tx:
        a = tx.create(patient(mrn="A")).resource["id"]
        tx.create(patient(mrn="B"))
        tx.update("Patient", a, {**patient(mrn="A", family="X"), "id": a})
        tx.create({"resourceType": "Device", "manufacturer": "ACME"})
    with store.transaction() as tx:
        assert tx.history("Patient").total == 3
        assert tx.history().total == 4
        page = tx.history(count=2, offset=0)
        assert len(page.entries) == 2 and page.entries[0].rtype == "Device"
        assert tx.history("Patient", since="2999-01-01").total == 0
        with pytest.raises(errors.NotFound):
            tx.history("Patient", "missing")


def test_index_follows_the_current_version(store):
    with store.transaction() as tx:
        rid = tx.create(patient(family="Becquerel")).resource["id"]
        tx.update("Patient", rid, {**patient(family="Rutherford"), "id": rid})
        assert tx.search("Patient", [("family", "becquerel")]).total == 0
        tx.update("Patient", rid, {**patient(family="Bohr"), "id": rid})
    with store.transaction() as tx:
        assert [tx.search("Patient", [("family", f)]).total for f in ("becquerel", "rutherford", "bohr")] == [0, 0, 1]
        assert tx.search("Patient", [("identifier", "urn:example:mrn|MRN-1")]).total == 1


def test_update_replaces_the_changed_index_rows_only(store):
    """Updates in later transactions (SQLite rewrites only the parameters whose rows changed): the rows
    on disk are exactly those of the current version, and every parameter finds it by its current values."""
    from sqlalchemy import func, select

    from dacs_fhir.store import searchparams
    from dacs_fhir.store.models import INDEX_TABLES, resource as resource_table

    def born(day):
        return {k: v for k, v in patient(family="Sklodowska").items() if k != "birthDate"} | ({"birthDate": day} if day else {})

    def rows_are_current(rid):
        with store.transaction() as tx:
            current = tx.read("Patient", rid)
            pk = tx.conn.execute(select(resource_table.c.pk).where(resource_table.c.rid == rid)).scalar_one()
            on_disk = {kind: tx.conn.execute(select(func.count()).select_from(t).where(t.c.res_pk == pk)).scalar_one()
                       for kind, t in INDEX_TABLES.items()}
        return on_disk == {kind: len(searchparams.extract("Patient", current).get(kind, ())) for kind in INDEX_TABLES}

    with store.transaction() as tx:
        rid = tx.create(patient()).resource["id"]
    with store.transaction() as tx:
        tx.update("Patient", rid, {**born("1867-11-07"), "id": rid})
    assert rows_are_current(rid)
    with store.transaction() as tx:
        tx.update("Patient", rid, {**born(None), "id": rid})  # birth date removed
    assert rows_are_current(rid)
    with store.transaction() as tx:
        tx.update("Patient", rid, {**born(None), "id": rid, "gender": "other"})
        tx.update("Patient", rid, {**born(None), "id": rid, "gender": "male"})  # again, in the same transaction
    assert rows_are_current(rid)
    with store.transaction() as tx:
        def total(name, value):
            return tx.search("Patient", [(name, value)]).total
        assert [total("family", f) for f in ("curie", "sklodowska")] == [0, 1]
        assert [total("gender", g) for g in ("female", "other", "male")] == [0, 0, 1]
        assert [total("birthdate", d) for d in ("1967-11-07", "1867-11-07")] == [0, 0]
        assert total("identifier", "urn:example:mrn|MRN-1") == 1


def test_create_update_delete_in_one_transaction(store):
    """Rows written in a transaction are read, changed and deleted before they reach the database
    (PostgreSQL inserts new rows at flush), and land with every version and the right index."""
    with store.transaction() as tx:
        a = tx.create({"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": "a1"}], "gender": "male"})
        b = tx.create({"resourceType": "Patient", "identifier": [{"system": "urn:t", "value": "b1"}]})
        rid, gone = a.resource["id"], b.resource["id"]
        assert tx.read("Patient", rid)["gender"] == "male"
        tx.update("Patient", rid, {**tx.read("Patient", rid), "gender": "female",
                                   "identifier": [{"system": "urn:t", "value": "a2"}]})
        tx.delete("Patient", gone)
        assert tx.match("Patient", "identifier=urn:t|a2") == [rid]
        assert tx.match("Patient", "identifier=urn:t|a1") == []
        with pytest.raises(errors.Gone):
            tx.read("Patient", gone)
    with store.transaction() as tx:
        assert tx.read("Patient", rid)["meta"]["versionId"] == "2"
        assert [e.method for e in tx.history("Patient", rid).entries] == ["update", "create"]
        assert [e.method for e in tx.history("Patient", gone).entries] == ["delete", "create"]
        assert [r["id"] for r in tx.search("Patient", [("identifier", "urn:t|a2")]).resources] == [rid]
        assert tx.search("Patient", [("identifier", "urn:t|b1")]).resources == []
        assert tx.search("Patient", [("gender", "female")]).total == 1


def test_many_new_resources_in_one_transaction(store):
    """More new rows than one draw of keys: each lands once, with its own key and index rows."""
    with store.transaction() as tx:
        ids = [tx.create({"resourceType": "Device", "identifier": [{"system": "urn:sn", "value": f"D{i}"}]}).resource["id"]
               for i in range(70)]
    with store.transaction() as tx:
        found = {d["id"] for d in tx.search("Device", [("identifier", "urn:sn|")], count=100).resources}
        assert found == set(ids) and tx.search("Device", [("identifier", "urn:sn|D69")]).resources[0]["id"] == ids[69]
