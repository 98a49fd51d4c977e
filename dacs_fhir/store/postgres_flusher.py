"""PostgreSQL: a transaction's writes kept until flush, then sent as two statements in one round trip."""
from __future__ import annotations

from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .models import INDEX_TABLES, resource as R, resource_version as V
from .raw import ArrayInsert, Statement, in_one
from .write_buffer import RESOURCE_KEYS, ROW, ROW_FOR_UPDATE, UPDATE, Flusher, WriteBuffer


class PostgresFlusher(Flusher):
    """New resource rows wait in the buffer with keys drawn ahead (``keys``), and a flush is one
    statement of deletes and one of array INSERTs (``raw.in_one``), sent in one pipeline with
    whatever else the caller has to send."""

    row = ROW
    row_for_update = ROW_FOR_UPDATE
    reads_are_locked = False

    def __init__(self, keys: Callable[[Connection], int]):
        self._keys = keys  # a free key of the resource sequence

    def insert_row(self, conn: Connection, buffer: WriteBuffer, values: dict) -> int:
        pk = self._keys(conn)
        buffer.new_rows[pk] = dict(values, pk=pk)
        return pk

    def update_row(self, conn: Connection, buffer: WriteBuffer, pk: int, values: dict) -> None:
        if pk in buffer.new_rows:  # created in this transaction, not yet inserted
            buffer.new_rows[pk].update(values)
        else:
            UPDATE.execute(conn, dict(values, key=pk))

    def reindex(self, buffer: WriteBuffer, pk: int, rtype: str, old_content: str,
                index: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """All of a resource's rows are deleted (in the flush's one round trip) and inserted again."""
        buffer.drop_index(pk, rtype)
        return index

    def parts(self, conn: Connection, buffer: WriteBuffer) -> tuple[list[tuple], list[tuple]]:
        """The pending writes as (deletes, inserts), each part an array INSERT or a DELETE. The deletes
        only remove rows that were there before (index rows of updated resources): they may run before
        all the inserts, as one statement, and the inserts after them as another."""
        deletes, inserts = [], []
        if buffer.new_rows:
            rows, buffer.new_rows = list(buffer.new_rows.values()), {}
            inserts.append(_NEW_ROWS.bind(rows))
        if buffer.stale:  # one statement: data-modifying CTEs, one per index table
            stale, buffer.stale = sorted(buffer.stale), set()
            deletes.append(_DELETE_STALE.bind(conn, {"pks": [pk for pk, _ in stale]}))
        if buffer.versions:
            inserts.append(_ARRAY_INSERTS[V.name].bind(buffer.take_versions()))
        inserts += [_ARRAY_INSERTS[INDEX_TABLES[kind].name].bind(rows) for kind, rows in buffer.take_index().items()
                    if rows]
        return deletes, inserts

    def combine(self, deletes: list[tuple], inserts: list[tuple]) -> list[tuple]:
        return in_one(deletes) + in_one(inserts)


_ARRAY_INSERTS = {V.name: ArrayInsert(V), **{t.name: ArrayInsert(t, json_rows=True) for t in INDEX_TABLES.values()}}
_NEW_ROWS = ArrayInsert(R, ["pk", *RESOURCE_KEYS])
_DELETE_STALE = Statement(text("WITH " + ", ".join(
    f"d_{kind} AS (DELETE FROM {table.name} WHERE res_pk = ANY(:pks))" for kind, table in INDEX_TABLES.items())
    + " SELECT 1"))
