"""Store: the write buffer and each database's flusher (SQLite writes at once, PostgreSQL keeps the
rows for one statement of deletes and one of inserts)."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from dacs_fhir.store import searchparams
from dacs_fhir.store.models import INDEX_TABLES, resource, resource_version
from dacs_fhir.store.postgres_flusher import PostgresFlusher
from dacs_fhir.store.raw import run_pipelined
from dacs_fhir.store.sqlite_flusher import SqliteFlusher
from dacs_fhir.store.transaction import KeyPool
from dacs_fhir.store.write_buffer import WriteBuffer

pytestmark = pytest.mark.integration


def _device(rid: str, version: int, model: str) -> dict:
    return {"resourceType": "Device", "id": rid, "meta": {"versionId": str(version)},
            "manufacturer": "ACME", "identifier": [{"system": "urn:serial", "value": rid}], "modelNumber": model}


def _write(conn, flusher, buffer, rid: str, version: int, model: str, pk=None, old=None) -> int:
    stored = _device(rid, version, model)
    content = json.dumps(stored)
    values = dict(version=version, last_updated=datetime(2024, 1, 1, 0, 0, version), deleted=False, content=content)
    if pk is None:
        pk = flusher.insert_row(conn, buffer, dict(values, rtype="Device", rid=rid))
    else:
        flusher.update_row(conn, buffer, pk, values)
    index = searchparams.extract("Device", stored, res_pk=pk, rtype="Device")
    if old is not None:
        index = flusher.reindex(buffer, pk, "Device", old, index)
    buffer.add(pk, dict(res_pk=pk, version=version, rtype="Device", rid=rid, last_updated=values["last_updated"],
                        method="create" if old is None else "update", content=content), index)
    return pk


def _values(kind: str, row) -> tuple:
    """An index row as (kind, its values but the resource's key), from the database or from ``extract``."""
    return (kind, *(str(row.get(c.name)) for c in INDEX_TABLES[kind].c if c.name not in ("id", "res_pk")))


def _on_disk(conn, pk: int) -> tuple:
    rows = conn.execute(select(resource.c.version).where(resource.c.pk == pk)).scalars().all()
    versions = conn.execute(select(func.count()).select_from(resource_version)
                            .where(resource_version.c.res_pk == pk)).scalar()
    index = sorted(_values(kind, r) for kind, t in INDEX_TABLES.items()
                   for r in conn.execute(select(t).where(t.c.res_pk == pk)).mappings())
    return rows, versions, index


def test_each_database_flusher_sends_the_buffer(store):
    postgres = store.engine.dialect.name == "postgresql"
    flusher = PostgresFlusher(KeyPool().take) if postgres else SqliteFlusher()
    buffer = WriteBuffer()
    with store.engine.begin() as conn:
        pk = _write(conn, flusher, buffer, "wb-1", 1, "M1")
        assert _on_disk(conn, pk)[0] == ([] if postgres else [1])  # PostgreSQL: the new row waits for the flush
        work = flusher.work(conn, buffer)
        assert len(work) == (1 if postgres else 0)  # nothing to delete: one statement of inserts
        assert (buffer.new_rows, buffer.versions, buffer.index, buffer.pending_pks) == ({}, [], {}, set())
        run_pipelined(conn, work)
        rows, versions, first_index = _on_disk(conn, pk)
        assert rows == [1] and versions == 1 and ("token", "Device", "identifier", "urn:serial", "wb-1") in first_index

        old = json.dumps(_device("wb-1", 1, "M1"))
        _write(conn, flusher, buffer, "wb-1", 2, "M2", pk=pk, old=old)
        work = flusher.work(conn, buffer)
        assert len(work) == (2 if postgres else 0)  # the stale index rows deleted, then the new ones inserted
        run_pipelined(conn, work)
        rows, versions, index = _on_disk(conn, pk)
        expected = searchparams.extract("Device", _device("wb-1", 2, "M2"), res_pk=pk, rtype="Device")
        assert rows == [2] and versions == 2
        assert index == sorted(_values(kind, r) for kind, rs in expected.items() for r in rs)
        assert index != first_index


def test_dropped_index_rows_leave_the_buffer_and_are_marked_stale():
    buffer = WriteBuffer()
    buffer.add(1, {"res_pk": 1}, {"token": [{"res_pk": 1, "param": "a"}, {"res_pk": 2, "param": "a"}]})
    buffer.add(2, {"res_pk": 2}, {"string": [{"res_pk": 2, "param": "b"}]})
    buffer.drop_index(2, "Device")
    assert buffer.index == {"token": [{"res_pk": 1, "param": "a"}], "string": []}
    assert buffer.stale == {(2, "Device")} and len(buffer.versions) == 2
    buffer.clear()
    assert (buffer.versions, buffer.index, buffer.stale, buffer.pending_pks) == ([], {}, set(), set())
