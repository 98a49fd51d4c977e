"""SQLite: a transaction's writes run as they come (new rows) or at flush, one executemany per table."""
from __future__ import annotations

import json

from sqlalchemy import bindparam, delete, insert
from sqlalchemy.engine import Connection

from . import searchparams
from .models import INDEX_TABLES, resource as R, resource_version as V
from .raw import Statement
from .write_buffer import RESOURCE_KEYS, ROW, UPDATE, Flusher, WriteBuffer


class SqliteFlusher(Flusher):
    """No round trips to save: new rows are inserted at once (their key comes back), the buffer's rows
    are inserted by one ``executemany`` per table."""

    row = ROW
    row_for_update = ROW  # no row locks: the write transaction (BEGIN IMMEDIATE) holds the database
    reads_are_locked = True

    def insert_row(self, conn: Connection, buffer: WriteBuffer, values: dict) -> int:
        return _INSERT.execute(conn, values).fetchone()[0]

    def update_row(self, conn: Connection, buffer: WriteBuffer, pk: int, values: dict) -> None:
        UPDATE.execute(conn, dict(values, key=pk))

    def reindex(self, buffer: WriteBuffer, pk: int, rtype: str, old_content: str,
                index: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """SQLite writes every page a transaction dirtied to its WAL at commit, and an update usually
        changes a few parameters (an ADT changes an address, not the identifiers): when the old rows
        are all on disk, only the parameters whose rows differ are deleted and inserted again."""
        if pk in buffer.pending_pks or (pk, rtype) in buffer.stale:
            buffer.drop_index(pk, rtype)
            return index
        old = searchparams.extract(rtype, json.loads(old_content), res_pk=pk, rtype=rtype)
        out: dict[str, list[dict]] = {}
        for kind in old.keys() | index.keys():
            before, after = _by_param(old.get(kind, ())), _by_param(index.get(kind, ()))
            changed = {param for param in before.keys() | after.keys() if before.get(param) != after.get(param)}
            buffer.stale_params.update((kind, pk, param) for param in changed if param in before)
            rows = [r for r in index.get(kind, ()) if r["param"] in changed]
            if rows:
                out[kind] = rows
        return out

    def parts(self, conn: Connection, buffer: WriteBuffer) -> tuple[list[tuple], list[tuple]]:
        """Deletes the stale index rows and inserts the pending versions and index rows, now."""
        if buffer.stale:
            stale, buffer.stale = sorted(buffer.stale), set()
            for kind, stmt in _DELETE_STALE.items():  # only the tables the resource types can have rows in
                stmt.executemany(conn, [{"pk": pk} for pk, rtype in stale if kind in searchparams.index_kinds(rtype)])
        if buffer.stale_params:
            stale_params, buffer.stale_params = buffer.stale_params, set()
            for kind, stmt in _DELETE_PARAM.items():
                args = [{"pk": pk, "param": param} for k, pk, param in stale_params if k == kind]
                if args:
                    stmt.executemany(conn, args)
        if buffer.versions:
            _insert(conn, V, buffer.take_versions())
        for kind, rows in buffer.take_index().items():
            _insert(conn, INDEX_TABLES[kind], rows)
        return [], []

    def combine(self, deletes: list[tuple], inserts: list[tuple]) -> list[tuple]:
        return deletes + inserts


def _insert(conn: Connection, table, rows: list[dict]) -> None:
    stmt = _INSERTS[table.name]
    assert stmt.keys is not None  # an INSERT names its columns
    stmt.executemany(conn, [{k: r.get(k) for k in stmt.keys} for r in rows])


def _by_param(rows) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["param"], []).append(r)
    return out


_INSERT = Statement(insert(R).returning(R.c.pk), RESOURCE_KEYS)
_INSERTS = {t.name: Statement(insert(t), list(t.c.keys())) for t in (V, *INDEX_TABLES.values())}
_DELETE_STALE = {kind: Statement(delete(t).where(t.c.res_pk == bindparam("pk"))) for kind, t in INDEX_TABLES.items()}
_DELETE_PARAM = {kind: Statement(delete(t).where(t.c.res_pk == bindparam("pk"), t.c.param == bindparam("param")))
                 for kind, t in INDEX_TABLES.items()}
