"""A transaction's writes not yet sent to the database, and what every database's flusher shares."""
from __future__ import annotations

from typing import NamedTuple, Optional

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from .models import resource as R
from .raw import Statement


class Row(NamedTuple):
    """A current ``resource`` row as a transaction knows it."""
    pk: int
    version: int
    deleted: bool
    content: Optional[str]


class WriteBuffer:
    """Rows written by a transaction and not yet sent: they go in batches (one statement per table),
    before any query that reads them and before commit, so a bundle costs a few round trips, not dozens."""

    __slots__ = ("new_rows", "versions", "index", "stale", "stale_params", "pending_pks")

    def __init__(self) -> None:
        # PostgreSQL: new resource rows, inserted by one array INSERT at flush with keys drawn ahead from the
        # sequence (a bundle's new resources cost one round trip, not one INSERT … RETURNING each)
        self.new_rows: dict[int, dict] = {}
        self.versions: list[dict] = []
        self.index: dict[str, list[dict]] = {}  # kind -> index rows to insert
        self.stale: set[tuple[int, str]] = set()  # (pk, type) of resources whose index rows are to be deleted
        self.stale_params: set[tuple[str, int, str]] = set()  # (kind, pk, param): just these rows (SQLite updates)
        self.pending_pks: set[int] = set()  # resources with index rows in self.index

    def clear(self) -> None:
        """Forget everything pending (its writes were rolled back to a savepoint)."""
        self.new_rows.clear()
        self.versions.clear()
        self.index.clear()
        self.stale.clear()
        self.stale_params.clear()
        self.pending_pks.clear()

    def add(self, pk: int, version: dict, index: dict[str, list[dict]]) -> None:
        """A written version of resource ``pk`` and its index rows."""
        self.versions.append(version)
        for kind, rows in index.items():
            self.index.setdefault(kind, []).extend(rows)
        self.pending_pks.add(pk)

    def drop_index(self, pk: int, rtype: str) -> None:
        """Every index row of ``pk`` goes: the pending ones now, those in the database at flush."""
        for kind, rows in self.index.items():
            self.index[kind] = [r for r in rows if r["res_pk"] != pk]
        self.stale.add((pk, rtype))

    def take_versions(self) -> list[dict]:
        rows, self.versions = self.versions, []
        return rows

    def take_index(self) -> dict[str, list[dict]]:
        pending, self.index = self.index, {}
        self.pending_pks.clear()
        return pending


class Flusher:
    """How one database receives a transaction's writes: resource rows inserted or updated, index rows
    replaced on update, and the buffer sent (``parts``) as statements to run in order."""

    row: Statement  # a current row by (rtype, rid)
    row_for_update: Statement  # the same, locked for the write that follows
    reads_are_locked: bool  # whether a row read without ``row_for_update`` stays current until commit

    def insert_row(self, conn: Connection, buffer: WriteBuffer, values: dict) -> int:
        """A new ``resource`` row (rtype, rid, version, last_updated, deleted, content); its key."""
        raise NotImplementedError

    def update_row(self, conn: Connection, buffer: WriteBuffer, pk: int, values: dict) -> None:
        """Set version, last_updated, deleted and content of row ``pk``."""
        raise NotImplementedError

    def reindex(self, buffer: WriteBuffer, pk: int, rtype: str, old_content: str,
                index: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """The index rows to insert for an update of ``pk`` (its new ``index``), the stale ones marked."""
        raise NotImplementedError

    def parts(self, conn: Connection, buffer: WriteBuffer) -> tuple[list[tuple], list[tuple]]:
        """The pending writes as (deletes, inserts) to send, the buffer emptied. A database that gains
        nothing from sending them with other statements runs them now and returns none."""
        raise NotImplementedError

    def combine(self, deletes: list[tuple], inserts: list[tuple]) -> list[tuple]:
        """Deletes (of rows that were there before) and inserts as the statements to run, in order."""
        raise NotImplementedError

    def work(self, conn: Connection, buffer: WriteBuffer) -> list[tuple]:
        """The statements of a flush, to send with whatever else the caller has to send."""
        return self.combine(*self.parts(conn, buffer))


# hot statements, compiled once per dialect and run on the DBAPI cursor (raw.py); psycopg prepares them
_ROW_SELECT = (select(R.c.pk, R.c.version, R.c.deleted, R.c.content)
               .where(R.c.rtype == bindparam("rtype"), R.c.rid == bindparam("rid")))
ROW = Statement(_ROW_SELECT)
ROW_FOR_UPDATE = Statement(_ROW_SELECT.with_for_update())
RESOURCE_KEYS = ["rtype", "rid", "version", "last_updated", "deleted", "content"]
UPDATE = Statement(update(R).where(R.c.pk == bindparam("key")), ["version", "last_updated", "deleted", "content"])
