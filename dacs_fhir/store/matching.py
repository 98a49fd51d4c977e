"""Conditional matching of one transaction (FHIR R4 http.html#cond-update: ``Type?query`` criteria),
with the locks that serialise concurrent conditional writes on the same criteria."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Optional
from urllib.parse import parse_qsl

from sqlalchemy import and_, bindparam, false, or_, select, text
from sqlalchemy.engine import Connection

from . import errors, searchparams
from .models import INDEX_TABLES, resource as R
from .query import compile_query, split_pipe, split_values
from .raw import Statement, run_pipelined
from .write_buffer import Flusher, Row, WriteBuffer

Token = tuple[str, str, str, str]  # (rtype, param, code, system)

_T = INDEX_TABLES["token"]
_TOKEN_SELECT = (
    select(R.c.rid, R.c.pk, R.c.version, R.c.deleted, R.c.content)
    .where(R.c.rtype == bindparam("rtype"), R.c.deleted == false(),
           R.c.pk.in_(select(_T.c.res_pk).where(_T.c.rtype == bindparam("rtype"), _T.c.param == bindparam("param"),
                                                _T.c.code == bindparam("code"), _T.c.system == bindparam("system"))))
    .order_by(R.c.pk)  # oldest first, as a search without _sort
    .limit(bindparam("limit"))
)
# conditional lookups are joins whose best plan changes as a new database's tables grow: planned
# with their values on every run, never from a generic plan
_TOKEN_MATCH = Statement(_TOKEN_SELECT, plan_each_run=True)
_TOKEN_MATCH_FOR_UPDATE = Statement(_TOKEN_SELECT.with_for_update(of=R), plan_each_run=True)
_LOCK = Statement(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"))


class Matcher:
    """Matches criteria against current resources; the rows it reads (and on PostgreSQL locks) go to
    ``rows``, the transaction's current rows, for the write that usually follows."""

    token_match: Statement  # one ``identifier=system|value`` criterion

    def __init__(self, conn: Connection, rows: dict[tuple[str, str], Optional[Row]], flusher: Flusher,
                 buffer: WriteBuffer):
        self.conn = conn
        self._rows = rows
        self._flusher, self._buffer = flusher, buffer  # the transaction's pending writes, which a match must see
        self._prefetched: dict[tuple[str, str], list[str]] = {}  # (type, query) -> ids, see prefetch
        self._locked: set[int] = set()

    def forget(self) -> None:
        """Drop prefetched matches: a write may change what a criterion matches."""
        self._prefetched.clear()

    def match(self, rtype: str, query: str, limit: int = 2) -> list[str]:
        """Ids of current resources matching a query string (``identifier=sys|val&…``), at most ``limit``."""
        hit = self._prefetched.pop((rtype, query), None)
        if hit is not None:
            return hit[:limit]
        params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        if not params:
            raise errors.InvalidSearch("a conditional interaction needs search parameters")
        self.lock([f"{rtype}?{query}"])
        run_pipelined(self.conn, self._flusher.work(self.conn, self._buffer))
        token = _single_token(rtype, params)
        if token is not None:  # the usual identifier=system|value: one prepared statement, which also
            # locks (PostgreSQL) and reads the matched rows for the write that usually follows
            rows = self.token_match.execute(self.conn, {"rtype": rtype, "param": params[0][0], "system": token[0],
                                                        "code": token[1], "limit": limit}).fetchall()
            for rid, *row in rows:
                self._rows[(rtype, rid)] = Row(*row)
            return [row[0] for row in rows]
        q = compile_query(rtype, params, strict=True)
        return list(self.conn.execute(select(R.c.rid).where(*q.conditions).order_by(R.c.pk).limit(limit)).scalars())

    def prefetch(self, criteria: list[tuple[str, str]]) -> None:
        """Match every ``identifier=system|value``-style criterion in one statement (locking the matched
        rows on PostgreSQL); the next ``match`` of each criterion is answered from memory."""
        wanted: dict[tuple[str, str], Token] = {}
        for rtype, query in criteria:
            params = parse_qsl(query.lstrip("?"), keep_blank_values=True)
            token = _single_token(rtype, params) if params else None
            if token is not None:
                wanted[(rtype, query)] = (rtype, params[0][0], token[1], token[0])
        # every criterion is locked first (key order, one statement), in the same round trip as the lookup
        work = self.lock_work([f"{t}?{q}" for t, q in criteria])
        if len(wanted) < 2:
            run_pipelined(self.conn, work)
            return
        work += self._flusher.work(self.conn, self._buffer)
        keys = sorted(set(wanted.values()))
        found: dict[Token, list[str]] = {}
        matched = run_pipelined(self.conn, [*work, self._prefetch_statement(keys)])[-1].fetchall()
        for rtype, param, code, system, rid, *row in matched:
            ids = found.setdefault((rtype, param, code, system), [])
            if rid not in ids:
                ids.append(rid)
            self._rows[(rtype, rid)] = Row(*row)
        for criterion, key in wanted.items():
            self._prefetched[criterion] = sorted(found.get(key, ()))

    def lock(self, names: list[str]) -> None:
        """Transaction-scoped locks on ``names`` (one statement, in key order)."""
        run_pipelined(self.conn, self.lock_work(names))

    def lock_work(self, names: list[str]) -> list[tuple]:
        """The statement of ``lock(names)``, to send with others (none when every name is held already)."""
        raise NotImplementedError

    def _prefetch_statement(self, keys: list[Token]) -> tuple:
        """The bound statement of ``prefetch``: current rows matching any of ``keys``, each row with its key."""
        raise NotImplementedError


class SqliteMatcher(Matcher):
    """SQLite needs no locks: its write transactions are serial."""

    token_match = _TOKEN_MATCH

    def lock_work(self, names: list[str]) -> list[tuple]:
        return []

    def _prefetch_statement(self, keys: list[Token]) -> tuple:
        values = {f"{name}{i}": v for i, key in enumerate(keys) for name, v in zip("tpcs", key, strict=True)}
        return _prefetch_sqlite(len(keys)).bind(self.conn, values)


class PostgresMatcher(Matcher):
    """Advisory locks on the criteria, row locks on the matched rows."""

    token_match = _TOKEN_MATCH_FOR_UPDATE

    def lock_work(self, names: list[str]) -> list[tuple]:
        """Advisory locks, taken in key order so two transactions cannot deadlock on them."""
        keys = sorted({int.from_bytes(hashlib.sha1(n.encode()).digest()[:8], "big", signed=True) for n in names}
                      - self._locked)
        if not keys:
            return []
        self._locked.update(keys)
        return [_LOCK.bind(self.conn, {"keys": keys})]

    def _prefetch_statement(self, keys: list[Token]) -> tuple:
        # one statement text for any number of criteria: planned cheaply, prepared once
        return _PREFETCH_PG.bind(self.conn, {name: [k[i] for k in keys] for i, name in enumerate(("t", "p", "c", "s"))})


def _single_token(rtype: str, params: list[tuple[str, str]]) -> Optional[tuple[str, str]]:
    """(system, code) when the query is one ``token=system|code`` parameter: one value, no modifier
    (escapes read as ``query.compile_query`` reads them)."""
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


@lru_cache(maxsize=64)
def _prefetch_sqlite(n: int) -> Statement:
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
