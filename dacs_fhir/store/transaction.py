"""One database transaction over the store: versioned writes with their search index, reads,
history and search (FHIR R4 http.html); conditional matching, the write buffer and dose analytics
are delegated to their own modules."""
from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Optional, Sequence

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from ..domain import DoseReport
from ..jsontext import compact
from . import dates, dose, errors, searchparams, validation
from .bundles import BundleProcessor
from .matching import Matcher, PostgresMatcher, SqliteMatcher
from .models import resource_version as V
from .postgres_flusher import PostgresFlusher
from .raw import Statement, run_pipelined
from .results import Change, History, HistoryEntry, Outcome, etag_version, new_id
from .searching import run_search
from .sqlite_flusher import SqliteFlusher
from .write_buffer import Flusher, Row, WriteBuffer


def _now() -> datetime:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # meta.lastUpdated has ms precision


def _without_meta_versioning(resource: dict) -> dict:
    out = dict(resource)
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


class Transaction:
    """The store interface of one transaction (see ``Store.transaction()``)."""

    def __init__(self, conn: Connection, keys: Optional["KeyPool"] = None):
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        # writes wait in the buffer until a query reads them or the transaction ends; the flusher is
        # how this database gets them (PostgreSQL: with keys drawn ahead, in one round trip)
        self._buffer = WriteBuffer()
        self._flusher: Flusher = PostgresFlusher((keys or KeyPool()).take) if self.postgres else SqliteFlusher()
        self._last: Optional[datetime] = None
        # current rows this transaction has locked or written, by (type, id): a conditional write
        # matches, locks and reads its row in one statement, and the write that follows reuses it
        self._rows: dict[tuple[str, str], Optional[Row]] = {}  # None: minted here, not yet written
        self._matcher: Matcher = (PostgresMatcher if self.postgres else SqliteMatcher)(
            conn, self._rows, self._flusher, self._buffer)
        # what this transaction changed, by (type, id): (version before it, version now, method)
        self._changes: dict[tuple[str, str], tuple[Optional[int], int, str]] = {}

    # ---- changes, for the hand-off after commit
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

    def checkpoint(self) -> dict:
        """What ``discard`` goes back to: the changes recorded so far (take it with a savepoint)."""
        return dict(self._changes)

    def discard(self, checkpoint: Optional[dict] = None) -> None:
        """Forget pending rows (their writes were rolled back to a savepoint) and the changes recorded
        since ``checkpoint``."""
        self._buffer.clear()
        self._rows.clear()
        self._matcher.forget()
        self._changes = dict(checkpoint or {})

    # ---- the write buffer
    def flush(self) -> None:
        """Insert new resource rows, delete stale index rows, insert the pending version and index rows
        (PostgreSQL: one statement of deletes and one of inserts, in one round trip)."""
        run_pipelined(self.conn, self._flusher.work(self.conn, self._buffer))

    def _clock(self) -> datetime:
        """Version timestamps, strictly increasing within the transaction (history order)."""
        now = _now()
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    # ---- reads
    def mint(self, rtype: str) -> str:
        """A new server id for ``rtype``, known to this transaction to be free (no lookup before its write)."""
        rid = new_id()
        self._rows[(rtype, rid)] = None
        return rid

    def _row(self, rtype: str, rid: str, lock: bool = False) -> Optional[Row]:
        if (rtype, rid) in self._rows:
            return self._rows[(rtype, rid)]
        stmt = self._flusher.row_for_update if lock else self._flusher.row
        found = stmt.execute(self.conn, {"rtype": rtype, "rid": rid}).fetchone()
        row = Row(*found) if found is not None else None
        if row is not None and (lock or self._flusher.reads_are_locked):
            self._rows[(rtype, rid)] = row
        return row

    def read(self, rtype: str, rid: str) -> dict:
        """The current version; NotFound (404) or Gone (410, deleted)."""
        row = self._row(rtype, rid)
        if row is None:
            raise errors.NotFound(f"{rtype}/{rid} is not known")
        if row.deleted:
            raise errors.Gone(f"{rtype}/{rid} was deleted")
        assert row.content is not None  # a row not deleted has content
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
            assert current.content is not None  # a row not deleted has content
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
        self._matcher.forget()  # a write may change what a criterion matches
        now, version = self._clock(), current.version + 1
        self._buffer.drop_index(current.pk, rtype)
        self._flusher.update_row(self.conn, self._buffer, current.pk,
                            dict(version=version, last_updated=now, deleted=True, content=None))
        self._rows[(rtype, rid)] = Row(current.pk, version, True, None)
        self._buffer.versions.append(dict(res_pk=current.pk, version=version, rtype=rtype, rid=rid,
                                          last_updated=now, method="delete", content=None))
        self._changed(rtype, rid, current.version, version, "delete")

    def _write(self, rtype: str, rid: str, resource: dict, current: Optional[Row], method: str,
               status: Optional[str] = None) -> Outcome:
        self._matcher.forget()  # a write may change what a criterion matches
        now = self._clock()
        version = current.version + 1 if current is not None else 1
        meta = {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": dates.instant(now)}
        body = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
        stored = {"resourceType": rtype, "id": rid, "meta": meta, **body}
        content = compact(stored)
        if current is None:
            pk = self._flusher.insert_row(self.conn, self._buffer, dict(
                rtype=rtype, rid=rid, version=version, last_updated=now, deleted=False, content=content))
        else:
            pk = current.pk
            self._flusher.update_row(self.conn, self._buffer, pk,
                                dict(version=version, last_updated=now, deleted=False, content=content))
        self._rows[(rtype, rid)] = Row(pk, version, False, content)
        index = searchparams.extract(rtype, stored, res_pk=pk, rtype=rtype)
        if current is not None and not current.deleted:
            assert current.content is not None  # a row not deleted has content
            index = self._flusher.reindex(self._buffer, pk, rtype, current.content, index)
        self._buffer.add(pk, dict(res_pk=pk, version=version, rtype=rtype, rid=rid, last_updated=now,
                                  method=method, content=content), index)
        self._changed(rtype, rid, current.version if current is not None else None, version, method)
        return Outcome(stored, status or ("created" if method == "create" else "updated"))

    # ---- conditional interactions (matching.py)
    def match(self, rtype: str, query: str, limit: int = 2) -> list[str]:
        """Ids of current resources matching a query string (``identifier=sys|val&…``), at most ``limit``."""
        return self._matcher.match(rtype, query, limit)

    def prefetch_matches(self, criteria: list[tuple[str, str]]) -> None:
        """Match every ``identifier=system|value``-style criterion in one statement (locking the matched
        rows on PostgreSQL); the next ``match`` of each criterion is answered from memory. A transaction
        Bundle's conditional entries are matched this way before any of them is written."""
        self._matcher.prefetch(criteria)

    def lock_criteria(self, criteria: list[tuple[str, str]]) -> None:
        """PostgreSQL: serialise concurrent conditional writes on the same criteria (advisory locks,
        taken in one statement and in key order so two transactions cannot deadlock on them)."""
        self._matcher.lock([f"{t}?{q}" for t, q in criteria])

    def lock(self, names: list[str]) -> None:
        """PostgreSQL: transaction-scoped advisory locks on ``names`` (one statement, in key order);
        SQLite needs none, its write transactions are serial."""
        self._matcher.lock(names)

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
            assert rtype is not None  # instance history names its type
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
        validation.model_class(rtype)
        self.flush()
        return run_search(self.conn, rtype, params, count, offset, strict)

    def process_bundle(self, bundle: dict, validate: bool = True, flush: bool = True) -> dict:
        """A transaction or batch Bundle; the response Bundle (FHIR R4 http.html#transaction).

        ``validate=False``: the entries were validated by their producer (see ``create``).
        ``flush=False``: a transaction's writes stay pending, to go with the caller's next ones
        (they are sent at the latest when the transaction ends)."""
        return BundleProcessor(self, validate, flush).process(bundle)

    # ---- dose analytics (dose.py)
    def record_dose_report(self, report: DoseReport, *, kept_json: dict, kept: Optional[DoseReport] = None,
                           resources: Sequence[dict] = (), references: Sequence[str] = ()) -> None:
        """Dose analytics rows of a (merged) ``report``, in this transaction, and the object's own report
        ``kept`` (default ``report``) kept for later merges of its study, ``kept_json`` being its JSON
        form (``mappers.report_json.dump``, made by the caller). The rows refer to the FHIR resources
        written for the report: ``resources`` as stored, or ``references`` (``Type/id``) read back.
        On PostgreSQL the rows go with the transaction's pending resource writes: one statement of
        deletes, one of inserts and upserts, in one round trip."""
        written = list(resources)
        if references:
            self.flush()  # resources named by reference are read back, from this transaction's writes
            written += dose.read_back(self.conn, references)
        deletes, writes = self._flusher.parts(self.conn, self._buffer)
        dose_deletes, dose_writes = dose.record_parts(self.conn, report, kept or report, kept_json, written)
        run_pipelined(self.conn, self._flusher.combine(deletes + dose_deletes, writes + dose_writes))

    def dose_reports_for_study(self, study_uid: str, lock: bool = False) -> list[dict]:
        """The kept domain reports (``kept_json`` of ``record_dose_report``) of a study, oldest first;
        ``lock``: after taking the study's lock (``lock``, name ``dose-study:<uid>``), in the same round trip."""
        work = self._matcher.lock_work([f"dose-study:{study_uid}"]) if lock else []
        found = run_pipelined(self.conn, [*work, dose.REPORTS_FOR_STUDY.bind(self.conn, {"uid": study_uid})])[-1]
        return [json.loads(c) for (c,) in found.fetchall()]


_NEXT_PKS = Statement(text("SELECT nextval(pg_get_serial_sequence('resource', 'pk')) FROM generate_series(1, :n)"))


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


def _int(vid) -> int:
    try:
        return int(str(vid))
    except ValueError:
        raise errors.NotFound(f"no version {vid!r}") from None
