"""One database transaction over the store: versioned writes with their search index, reads,
history and search (FHIR R4 http.html)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import NamedTuple, Optional
from urllib.parse import parse_qsl

from sqlalchemy import and_, bindparam, delete, false, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from ..jsontext import compact
from . import dates, errors, searchparams, validation
from .raw import ArrayInsert, Statement, in_one, run_pipelined
from .models import INDEX_TABLES, resource as R, resource_version as V


@dataclass
class Outcome:
    resource: dict
    status: str  # created | updated | existing
    changed: bool = True  # False when an update carried the same content (no new version)


@dataclass(frozen=True)
class Change:
    """One resource a committed transaction changed: what the rules stage is handed after commit
    (docs/architecture.md). ``previous_version`` is None for a create; ``version`` of a delete is its
    tombstone version."""
    resource_type: str
    id: str
    version: int
    previous_version: Optional[int]
    method: str  # create | update | delete

    def as_list(self) -> list:
        """The JSON form that task messages carry."""
        return [self.resource_type, self.id, self.version, self.previous_version, self.method]

    @classmethod
    def from_list(cls, value) -> "Change":
        rtype, rid, version, previous, method = value
        return cls(rtype, rid, int(version), None if previous is None else int(previous), method)


@dataclass
class HistoryEntry:
    resource: Optional[dict]
    method: str  # create | update | delete
    versionId: str
    lastUpdated: str
    rtype: str
    rid: str


@dataclass
class History:
    total: int
    entries: list[HistoryEntry]


def new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # meta.lastUpdated has ms precision


def _dump(resource: dict) -> str:
    return compact(resource)


def _without_meta_versioning(resource: dict) -> dict:
    out = dict(resource)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def etag_version(value: Optional[str]) -> Optional[str]:
    """``W/"3"`` or ``3`` -> ``3``."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


class Transaction:
    """The store interface of one transaction (see ``Store.transaction()``)."""

    def __init__(self, conn: Connection, keys: Optional["KeyPool"] = None):
        self.conn = conn
        self._keys = keys if keys is not None else KeyPool()
        self.postgres = conn.dialect.name == "postgresql"
        # version and index rows are inserted in batches (one statement per table), before any
        # query that reads them and before commit: a bundle costs a few round trips, not dozens
        self._versions: list[dict] = []
        self._index: dict[str, list[dict]] = {}
        self._stale: set[tuple[int, str]] = set()  # (pk, type) of resources whose index rows are to be deleted
        self._stale_params: set[tuple[str, int, str]] = set()  # (kind, pk, param): just these rows (SQLite updates)
        self._pending_pks: set[int] = set()  # resources with index rows in self._index
        self._locked: set[int] = set()
        self._last: Optional[datetime] = None
        # current rows this transaction has locked or written, by (type, id): a conditional write
        # matches, locks and reads its row in one statement, and the write that follows reuses it
        self._rows: dict[tuple[str, str], Optional[_Row]] = {}  # None: minted here, not yet written
        self._prefetched: dict[tuple[str, str], list[str]] = {}  # (type, query) -> ids, see prefetch_matches
        # PostgreSQL: new resource rows, inserted by one array INSERT at flush with keys drawn ahead from the
        # sequence (a bundle's new resources cost one round trip, not one INSERT … RETURNING each)
        self._new_rows: dict[int, dict] = {}
        # what this transaction changed, by (type, id): (version before it, version now, method)
        self._changes: dict[tuple[str, str], tuple[Optional[int], int, str]] = {}

    @property
    def changes(self) -> list[Change]:
        """Every resource this transaction created, updated or deleted, once each, in write order: the
        version before the transaction and the last one it wrote."""
        return [Change(t, i, v, prev, m) for (t, i), (prev, v, m) in self._changes.items()]

    def _changed(self, rtype: str, rid: str, previous: Optional[int], version: int, method: str) -> None:
        first = self._changes.get((rtype, rid))
        if first is not None:
            previous = first[0]
            method = "create" if first[2] == "create" and method != "delete" else method
        self._changes[(rtype, rid)] = (previous, version, method)

    def _clock(self) -> datetime:
        """Version timestamps, strictly increasing within the transaction (history order)."""
        now = _now()
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    def checkpoint(self) -> dict:
        """What ``discard`` goes back to: the changes recorded so far (take it with a savepoint)."""
        return dict(self._changes)

    def discard(self, checkpoint: Optional[dict] = None) -> None:
        """Forget pending rows (their writes were rolled back to a savepoint) and the changes recorded
        since ``checkpoint``."""
        self._versions.clear()
        self._index.clear()
        self._stale.clear()
        self._stale_params.clear()
        self._pending_pks.clear()
        self._rows.clear()
        self._prefetched.clear()
        self._new_rows.clear()
        self._changes = dict(checkpoint or {})

    def flush(self) -> None:
        """Insert new resource rows, delete stale index rows, insert the pending version and index rows."""
        if self.postgres:
            run_pipelined(self.conn, self._flush_work())
            return
        if self._stale:
            stale, self._stale = sorted(self._stale), set()
            for kind, stmt in _DELETE_STALE.items():  # only the tables the resource types can have rows in
                stmt.executemany(self.conn, [{"pk": pk} for pk, rtype in stale if kind in searchparams.index_kinds(rtype)])
        if self._stale_params:
            stale_params, self._stale_params = self._stale_params, set()
            for kind, stmt in _DELETE_PARAM.items():
                args = [{"pk": pk, "param": param} for k, pk, param in stale_params if k == kind]
                if args:
                    stmt.executemany(self.conn, args)
        if self._versions:
            rows, self._versions = self._versions, []
            self._insert(V, rows)
        pending, self._index = self._index, {}
        self._pending_pks.clear()
        for kind, rows in pending.items():
            self._insert(INDEX_TABLES[kind], rows)

    def _insert(self, table, rows: list[dict]) -> None:
        stmt = _INSERTS[table.name]
        stmt.executemany(self.conn, [{k: r.get(k) for k in stmt.keys} for r in rows])

    def _flush_work(self) -> list[tuple]:
        """PostgreSQL: the writes of ``flush`` as (SQL, parameters) to send in one pipeline (one round
        trip) with whatever else the caller has to send: one DELETE of stale index rows, then one
        statement inserting the new resource rows, versions and index rows (``raw.in_one``)."""
        deletes, inserts = self._flush_parts()
        return in_one(deletes) + in_one(inserts)

    def _flush_parts(self) -> tuple[list[tuple], list[tuple]]:
        """PostgreSQL: the pending writes as (deletes, inserts), each part an array INSERT or a DELETE.
        The deletes only remove rows that were there before (index rows of updated resources): they
        may run before all the inserts, as one statement, and the inserts after them as another."""
        if not self.postgres:
            self.flush()
            return [], []
        deletes, inserts = [], []
        if self._new_rows:
            rows, self._new_rows = list(self._new_rows.values()), {}
            inserts.append(_NEW_ROWS_PG.bind(rows))
        if self._stale:  # one statement: data-modifying CTEs, one per index table
            stale, self._stale = sorted(self._stale), set()
            deletes.append(_DELETE_STALE_PG.bind(self.conn, {"pks": [pk for pk, _ in stale]}))
        if self._versions:
            rows, self._versions = self._versions, []
            inserts.append(_ARRAY_INSERTS[V.name].bind(rows))
        pending, self._index = self._index, {}
        self._pending_pks.clear()
        inserts += [_ARRAY_INSERTS[INDEX_TABLES[kind].name].bind(rows) for kind, rows in pending.items() if rows]
        return deletes, inserts

    # ---- reads
    def mint(self, rtype: str) -> str:
        """A new server id for ``rtype``, known to this transaction to be free (no lookup before its write)."""
        rid = new_id()
        self._rows[(rtype, rid)] = None
        return rid

    def _row(self, rtype: str, rid: str, lock: bool = False):
        if (rtype, rid) in self._rows:
            return self._rows[(rtype, rid)]
        stmt = _ROW_FOR_UPDATE if lock and self.postgres else _ROW
        found = stmt.execute(self.conn, {"rtype": rtype, "rid": rid}).fetchone()
        row = _Row(*found) if found is not None else None
        if row is not None and (lock or not self.postgres):  # SQLite: the write transaction holds the database
            self._rows[(rtype, rid)] = row
        return row

    def read(self, rtype: str, rid: str) -> dict:
        """The current version; NotFound (404) or Gone (410, deleted)."""
        row = self._row(rtype, rid)
        if row is None:
            raise errors.NotFound(f"{rtype}/{rid} is not known")
        if row.deleted:
            raise errors.Gone(f"{rtype}/{rid} was deleted")
        return json.loads(row.content)

    def vread(self, rtype: str, rid: str, vid) -> dict:
        """One version; Gone when that version is a delete."""
        self.flush()
        row = self.conn.execute(
            select(V.c.content).where(V.c.rtype == rtype, V.c.rid == rid, V.c.version == _int(vid))
        ).first()
        if row is None:
            raise errors.NotFound(f"{rtype}/{rid} has no version {vid}")
        if row.content is None:
            raise errors.Gone(f"{rtype}/{rid} version {vid} is a delete")
        return json.loads(row.content)

    # ---- writes
    def create(self, resource: dict, if_none_exist: Optional[str] = None, rid: Optional[str] = None,
               validate: bool = True) -> Outcome:
        """Create with a server id (``rid`` is for transaction entries whose id was assigned early).

        ``validate=False`` is for resources their producer has validated already (the ingest
        pipeline checks its bundles against the profiles before writing them)."""
        rtype = validation.resource_type(resource)
        if if_none_exist:
            found = self.match(rtype, if_none_exist)
            if len(found) > 1:
                raise errors.PreconditionFailed(f"If-None-Exist matches {len(found)} {rtype} resources")
            if found:
                return Outcome(self.read(rtype, found[0]), "existing", changed=False)
        if validate:
            validation.validate(resource)
        return self._write(rtype, rid or new_id(), resource, None, "create")

    def update(self, rtype: str, rid: str, resource: dict, if_match: Optional[str] = None,
               validate: bool = True) -> Outcome:
        """Update, or create with the client's id; VersionConflict when ``if_match`` is not current."""
        if validation.resource_type(resource) != rtype:
            raise errors.InvalidResource(f"resourceType {resource['resourceType']} does not match {rtype}", "resourceType")
        current = self._row(rtype, rid, lock=True)
        wanted = etag_version(if_match)
        if wanted is not None and (current is None or current.deleted or str(current.version) != wanted):
            have = "none" if current is None or current.deleted else current.version
            raise errors.VersionConflict(f"{rtype}/{rid}: If-Match version {wanted}, current version {have}")
        resource = {**resource, "id": rid}
        if current is not None and not current.deleted:
            old = json.loads(current.content)
            if _without_meta_versioning(old) == _without_meta_versioning(resource):
                return Outcome(old, "updated", changed=False)  # stored content was validated already
            if validate:
                validation.validate(resource)
            return self._write(rtype, rid, resource, current, "update")
        if validate:
            validation.validate(resource)
        return self._write(rtype, rid, resource, current, "create" if current is None else "update", "created")

    def conditional_update(self, rtype: str, query: str, resource: dict) -> Outcome:
        """PUT [type]?query: no match creates, one match updates, more is PreconditionFailed (412)."""
        found = self.match(rtype, query)
        if len(found) > 1:
            raise errors.PreconditionFailed(f"conditional update matches {len(found)} {rtype} resources")
        if found:
            if resource.get("id") not in (None, found[0]):
                raise errors.InvalidResource(f"{rtype}.id {resource['id']!r} differs from the matched resource", f"{rtype}.id")
            return self.update(rtype, found[0], resource)
        rid = resource.get("id") or self.mint(rtype)
        if resource.get("id") and self._row(rtype, rid) is not None:
            raise errors.Conflict(f"{rtype}/{rid} exists but does not match {query}")
        return self.update(rtype, rid, {**resource, "id": rid})

    def delete(self, rtype: str, rid: str) -> None:
        """Delete as a tombstone version; deleting a deleted resource changes nothing."""
        validation.model_class(rtype)
        current = self._row(rtype, rid, lock=True)
        if current is None:
            raise errors.NotFound(f"{rtype}/{rid} is not known")
        if current.deleted:
            return
        self._prefetched.clear()
        now, version = self._clock(), current.version + 1
        self._drop_index(current.pk, rtype)
        if current.pk in self._new_rows:  # created in this transaction, not yet inserted
            self._new_rows[current.pk].update(version=version, last_updated=now, deleted=True, content=None)
        else:
            self.conn.execute(update(R).where(R.c.pk == current.pk).values(
                version=version, last_updated=now, deleted=True, content=None))
        self._rows[(rtype, rid)] = _Row(current.pk, version, True, None)
        self._versions.append(dict(res_pk=current.pk, version=version, rtype=rtype, rid=rid,
                                   last_updated=now, method="delete", content=None))
        self._changed(rtype, rid, current.version, version, "delete")

    def _write(self, rtype, rid, resource, current, method, status=None) -> Outcome:
        self._prefetched.clear()  # a write may change what a criterion matches
        now = self._clock()
        version = current.version + 1 if current is not None else 1
        meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": dates.instant(now)}
        body = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
        stored = {"resourceType": rtype, "id": rid, "meta": meta, **body}
        content = _dump(stored)
        values = dict(rtype=rtype, rid=rid, version=version, last_updated=now, deleted=False, content=content)
        if current is None and self.postgres:
            pk = self._next_pk()
            self._new_rows[pk] = dict(values, pk=pk)
        elif current is None:
            pk = _INSERT.execute(self.conn, values).fetchone()[0]
        else:
            pk = current.pk
            if pk in self._new_rows:
                self._new_rows[pk].update(values)
            else:
                _UPDATE.execute(self.conn, dict(key=pk, version=version, last_updated=now, deleted=False, content=content))
        self._rows[(rtype, rid)] = _Row(pk, version, False, content)
        self._versions.append(dict(res_pk=pk, version=version, rtype=rtype, rid=rid, last_updated=now,
                                   method=method, content=content))
        index = searchparams.extract(rtype, stored, res_pk=pk, rtype=rtype)
        if current is not None and not current.deleted:
            index = self._reindex(pk, rtype, current.content, index)
        for kind, rows in index.items():
            self._index.setdefault(kind, []).extend(rows)
        self._pending_pks.add(pk)
        self._changed(rtype, rid, current.version if current is not None else None, version, method)
        return Outcome(stored, status or ("created" if method == "create" else "updated"))

    def _reindex(self, pk: int, rtype: str, old_content: str, index: dict[str, list[dict]]) -> dict[str, list[dict]]:
        """The index rows to insert for an update, the stale ones marked for deletion.

        SQLite writes every page a transaction dirtied to its WAL at commit, and an update usually
        changes a few parameters (an ADT changes an address, not the identifiers): when the old rows
        are all on disk, only the parameters whose rows differ are deleted and inserted again.
        PostgreSQL deletes all of a resource's rows in one round trip instead."""
        if self.postgres or pk in self._pending_pks or pk in self._new_rows or (pk, rtype) in self._stale:
            self._drop_index(pk, rtype)
            return index
        old = searchparams.extract(rtype, json.loads(old_content), res_pk=pk, rtype=rtype)
        out: dict[str, list[dict]] = {}
        for kind in old.keys() | index.keys():
            before, after = _by_param(old.get(kind, ())), _by_param(index.get(kind, ()))
            changed = {param for param in before.keys() | after.keys() if before.get(param) != after.get(param)}
            self._stale_params.update((kind, pk, param) for param in changed if param in before)
            rows = [r for r in index.get(kind, ()) if r["param"] in changed]
            if rows:
                out[kind] = rows
        return out

    def _next_pk(self) -> int:
        """A key from the resource sequence (drawn ahead, shared by the store's transactions)."""
        return self._keys.take(self.conn)

    def _drop_index(self, pk: int, rtype: str) -> None:
        for kind, rows in self._index.items():
            self._index[kind] = [r for r in rows if r["res_pk"] != pk]
        self._stale.add((pk, rtype))

    # ---- conditional interactions
    def match(self, rtype: str, query: str, limit: int = 2) -> list[str]:
        """Ids of current resources matching a query string (``identifier=sys|val&…``), at most ``limit``."""
        from .query import compile_query

        hit = self._prefetched.pop((rtype, query), None)
        if hit is not None:
            return hit[:limit]
        params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if not params:
            raise errors.InvalidSearch("a conditional interaction needs search parameters")
        self.lock_criteria([(rtype, query)])
        self.flush()
        token = _single_token(rtype, params)
        if token is not None:  # the usual identifier=system|value: one prepared statement, which also
            # locks (PostgreSQL) and reads the matched rows for the write that usually follows
            stmt = _TOKEN_MATCH_FOR_UPDATE if self.postgres else _TOKEN_MATCH
            rows = stmt.execute(self.conn, {"rtype": rtype, "param": params[0][0], "system": token[0],
                                            "code": token[1], "limit": limit}).fetchall()
            for rid, *row in rows:
                self._rows[(rtype, rid)] = _Row(*row)
            return [row[0] for row in rows]
        q = compile_query(rtype, params, strict=True)
        return list(self.conn.execute(select(R.c.rid).where(*q.conditions).order_by(R.c.pk).limit(limit)).scalars())

    def prefetch_matches(self, criteria: list[tuple[str, str]]) -> None:
        """Match every ``identifier=system|value``-style criterion in one statement (locking the matched
        rows on PostgreSQL); the next ``match`` of each criterion is answered from memory. A transaction
        Bundle's conditional entries are matched this way before any of them is written."""
        wanted: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        for rtype, query in criteria:
            params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
            token = _single_token(rtype, params) if params else None
            if token is not None:
                wanted[(rtype, query)] = (rtype, params[0][0], token[1], token[0])
        # every criterion is locked first (key order, one statement), in the same round trip as the lookup
        work = self._lock_work([f"{t}?{q}" for t, q in criteria])
        if len(wanted) < 2:
            run_pipelined(self.conn, work)
            return
        work += self._flush_work()
        keys = sorted(set(wanted.values()))
        if self.postgres:  # one statement text for any number of criteria: planned cheaply, prepared once
            stmt = _PREFETCH_PG
            values = {name: [k[i] for k in keys] for i, name in enumerate(("t", "p", "c", "s"))}
        else:
            stmt = _prefetch_statement(len(keys))
            values = {f"{name}{i}": v for i, key in enumerate(keys) for name, v in zip("tpcs", key)}
        found: dict[tuple, list[str]] = {}
        matched = run_pipelined(self.conn, [*work, stmt.bind(self.conn, values)])[-1].fetchall()
        for rtype, param, code, system, rid, *row in matched:
            ids = found.setdefault((rtype, param, code, system), [])
            if rid not in ids:
                ids.append(rid)
            self._rows[(rtype, rid)] = _Row(*row)
        for criterion, key in wanted.items():
            self._prefetched[criterion] = sorted(found.get(key, ()))

    def lock_criteria(self, criteria: list[tuple[str, str]]) -> None:
        """PostgreSQL: serialise concurrent conditional writes on the same criteria (advisory locks,
        taken in one statement and in key order so two transactions cannot deadlock on them)."""
        self.lock([f"{t}?{q}" for t, q in criteria])

    def lock(self, names: list[str]) -> None:
        """PostgreSQL: transaction-scoped advisory locks on ``names`` (one statement, in key order);
        SQLite needs none, its write transactions are serial."""
        run_pipelined(self.conn, self._lock_work(names))

    def _lock_work(self, names: list[str]) -> list[tuple]:
        """The statement of ``lock(names)``, to send with others (none when every name is held already)."""
        if not self.postgres:
            return []
        keys = sorted({int.from_bytes(hashlib.sha1(n.encode()).digest()[:8], "big", signed=True) for n in names}
                      - self._locked)
        if not keys:
            return []
        self._locked.update(keys)
        return [_LOCK_PG.bind(self.conn, {"keys": keys})]

    # ---- history and search
    def history(self, rtype: Optional[str] = None, rid: Optional[str] = None, since=None,
                count: int = 50, offset: int = 0) -> History:
        """Versions newest first (instance, type or system history)."""
        self.flush()
        where = []
        if rtype:
            where.append(V.c.rtype == rtype)
        if rid:
            where.append(V.c.rid == rid)
            if self._row(rtype, rid) is None:
                raise errors.NotFound(f"{rtype}/{rid} is not known")
        if since:
            try:
                where.append(V.c.last_updated >= (since if isinstance(since, datetime) else dates.parse_range(since)[0]))
            except ValueError:
                raise errors.InvalidSearch(f"_since must be an instant, not {since!r}") from None
        total = self.conn.execute(select(func.count()).select_from(V).where(*where)).scalar_one()
        rows = self.conn.execute(
            select(V).where(*where).order_by(V.c.last_updated.desc(), V.c.version.desc()).limit(count).offset(offset)
        ).all()
        entries = [HistoryEntry(json.loads(r.content) if r.content else None, r.method, str(r.version),
                                dates.instant(r.last_updated), r.rtype, r.rid) for r in rows]
        return History(total, entries)

    def search(self, rtype: str, params: list[tuple[str, str]], count: int = 50, offset: int = 0,
               strict: bool = False):
        """Search (FHIR R4 search.html); returns a SearchResult."""
        from .searching import run_search

        validation.model_class(rtype)
        self.flush()
        return run_search(self.conn, rtype, params, count, offset, strict)

    def process_bundle(self, bundle: dict, validate: bool = True, flush: bool = True) -> dict:
        """A transaction or batch Bundle; the response Bundle (FHIR R4 http.html#transaction).

        ``validate=False``: the entries were validated by their producer (see ``create``).
        ``flush=False``: a transaction's writes stay pending, to go with the caller's next ones
        (they are sent at the latest when the transaction ends)."""
        from .bundles import BundleProcessor

        return BundleProcessor(self, validate, flush).process(bundle)

    # ---- dose analytics
    def record_dose_report(self, report, summary=None, events=None, dumped: Optional[dict] = None) -> None:
        """Dose analytics rows of a (merged) report, in this transaction (``dumped``: the kept report's
        ``report_json.dump`` when the caller has made it already). On PostgreSQL, they go with the
        transaction's pending resource writes: one statement of deletes, one of inserts and upserts,
        in one round trip."""
        from .dose import record_parts

        if _by_reference(summary, events):
            self.flush()  # resources named by reference are read back, from this transaction's writes
        deletes, writes = self._flush_parts()
        dose_deletes, dose_writes = record_parts(self.conn, report, summary, events, dumped)
        if self.postgres:
            run_pipelined(self.conn, in_one(deletes + dose_deletes) + in_one(writes + dose_writes))
        else:
            run_pipelined(self.conn, dose_deletes + dose_writes)

    def dose_reports_for_study(self, study_uid: str, lock: bool = False) -> list[dict]:
        """The kept domain reports (``report_json.dump`` form) of a study, oldest first; ``lock``: after
        taking the study's lock (``lock``, name ``dose-study:<uid>``), in the same round trip."""
        from .dose import REPORTS_FOR_STUDY

        work = self._lock_work([f"dose-study:{study_uid}"]) if lock else []
        found = run_pipelined(self.conn, [*work, REPORTS_FOR_STUDY.bind(self.conn, {"uid": study_uid})])[-1]
        return [json.loads(c) for (c,) in found.fetchall()]

    def keep_dose_report(self, report) -> None:
        """Keep one domain report of a study so later objects can be merged with it."""
        from .dose import keep_report

        keep_report(self.conn, report)


# hot statements, compiled once per dialect and run on the DBAPI cursor (raw.py); psycopg prepares them
_ROW_SELECT = (select(R.c.pk, R.c.version, R.c.deleted, R.c.content)
               .where(R.c.rtype == bindparam("rtype"), R.c.rid == bindparam("rid")))
_ROW = Statement(_ROW_SELECT)
_ROW_FOR_UPDATE = Statement(_ROW_SELECT.with_for_update())
_RESOURCE_KEYS = ["rtype", "rid", "version", "last_updated", "deleted", "content"]
_INSERT = Statement(insert(R).returning(R.c.pk), _RESOURCE_KEYS)
_NEW_ROW_KEYS = ["pk", *_RESOURCE_KEYS]
_NEXT_PKS = Statement(text("SELECT nextval(pg_get_serial_sequence('resource', 'pk')) FROM generate_series(1, :n)"))
_LOCK_PG = Statement(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"))
_UPDATE = Statement(update(R).where(R.c.pk == bindparam("key")), ["version", "last_updated", "deleted", "content"])
_INSERTS = {t.name: Statement(insert(t), list(t.c.keys())) for t in (V, *INDEX_TABLES.values())}
_ARRAY_INSERTS = {V.name: ArrayInsert(V), **{t.name: ArrayInsert(t, json_rows=True) for t in INDEX_TABLES.values()}}
_NEW_ROWS_PG = ArrayInsert(R, _NEW_ROW_KEYS)
_DELETE_STALE = {kind: Statement(delete(t).where(t.c.res_pk == bindparam("pk"))) for kind, t in INDEX_TABLES.items()}
_DELETE_PARAM = {kind: Statement(delete(t).where(t.c.res_pk == bindparam("pk"), t.c.param == bindparam("param")))
                 for kind, t in INDEX_TABLES.items()}


def _by_param(rows) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["param"], []).append(r)
    return out


_T = INDEX_TABLES["token"]
_TOKEN_SELECT = (
    select(R.c.rid, R.c.pk, R.c.version, R.c.deleted, R.c.content)
    .where(R.c.rtype == bindparam("rtype"), R.c.deleted == false(),
           R.c.pk.in_(select(_T.c.res_pk).where(_T.c.rtype == bindparam("rtype"), _T.c.param == bindparam("param"),
                                                _T.c.code == bindparam("code"), _T.c.system == bindparam("system"))))
    .order_by(R.c.pk)  # oldest first, as a search without _sort
    .limit(bindparam("limit"))
)
_TOKEN_MATCH = Statement(_TOKEN_SELECT, plan_each_run=True)
_TOKEN_MATCH_FOR_UPDATE = Statement(_TOKEN_SELECT.with_for_update(of=R), plan_each_run=True)
_DELETE_STALE_PG = Statement(text("WITH " + ", ".join(
    f"d_{kind} AS (DELETE FROM {table.name} WHERE res_pk = ANY(:pks))" for kind, table in INDEX_TABLES.items())
    + " SELECT 1"))


@lru_cache(maxsize=64)
def _prefetch_statement(n: int) -> Statement:
    """SQLite: current rows matching any of ``n`` (rtype, param, code, system) tokens, bound as t0, p0,
    c0, s0, …: an OR of equalities, not a row-value IN, so each term is an index lookup."""
    return Statement(
        select(_T.c.rtype, _T.c.param, _T.c.code, _T.c.system, R.c.rid, R.c.pk, R.c.version, R.c.deleted, R.c.content)
        .join(R, R.c.pk == _T.c.res_pk)
        .where(R.c.deleted == false(),
               or_(*(and_(_T.c.rtype == bindparam(f"t{i}"), _T.c.param == bindparam(f"p{i}"),
                          _T.c.code == bindparam(f"c{i}"), _T.c.system == bindparam(f"s{i}")) for i in range(n)))))


# PostgreSQL: the criteria as four parallel arrays, one index lookup each, matched rows locked
_PREFETCH_PG = Statement(text(
    "SELECT t.rtype, t.param, t.code, t.system, r.rid, r.pk, r.version, r.deleted, r.content"
    " FROM unnest(CAST(:t AS text[]), CAST(:p AS text[]), CAST(:c AS text[]), CAST(:s AS text[]))"
    " AS k(rtype, param, code, system)"
    " JOIN idx_token t ON t.rtype = k.rtype AND t.param = k.param AND t.code = k.code AND t.system = k.system"
    " JOIN resource r ON r.pk = t.res_pk AND NOT r.deleted"
    " FOR UPDATE OF r"), plan_each_run=True)


class KeyPool:
    """PostgreSQL: keys of new ``resource`` rows, drawn from its sequence a hundred at a time and
    shared by one store's transactions, so that a stored object rarely waits a round trip for its
    keys. Keys a rolled-back transaction took are not reused (a sequence has gaps anyway), and a
    forked process (Celery's prefork pool) draws its own."""

    def __init__(self, batch: int = 100):
        self.batch = batch
        self._keys: list[int] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def take(self, conn: Connection) -> int:
        with self._lock:
            if self._pid != os.getpid():
                self._keys, self._pid = [], os.getpid()
            if not self._keys:
                self._keys = [pk for (pk,) in _NEXT_PKS.execute(conn, {"n": self.batch}).fetchall()][::-1]
            return self._keys.pop()


def _by_reference(*parts) -> bool:
    """Whether ``dose.record`` is given any resource as a ``Type/id`` string (it reads those back)."""
    for part in parts:
        if isinstance(part, dict) and "resourceType" not in part:
            part = list(part.values())
        if isinstance(part, (list, tuple)) and any(isinstance(item, str) for item in part):
            return True
    return False


class _Row(NamedTuple):
    """A current ``resource`` row as this transaction knows it."""
    pk: int
    version: int
    deleted: bool
    content: Optional[str]


def _single_token(rtype: str, params: list[tuple[str, str]]) -> Optional[tuple[str, str]]:
    """(system, code) when the query is one ``token=system|code`` parameter: one value, no modifier
    (escapes read as ``query.compile_query`` reads them)."""
    from .query import split_pipe, split_values

    if len(params) != 1:
        return None
    name, value = params[0]
    p = searchparams.param(rtype, name)
    if p is None or p.type != "token":
        return None
    values = split_values(value)
    if len(values) != 1:
        return None
    parts = split_pipe(values[0])
    if len(parts) < 2:
        return None
    system, code = parts[0], "|".join(parts[1:])
    return (system, code) if system and code else None


def _int(vid) -> int:
    try:
        return int(str(vid))
    except ValueError:
        raise errors.NotFound(f"no version {vid!r}") from None
