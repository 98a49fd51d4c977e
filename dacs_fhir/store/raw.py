"""The store's hot statements, run straight on the DBAPI cursor.

Every resource write runs the same handful of statements (read the current row, insert or update
it, insert its version and index rows). Through ``Connection.execute`` each call costs SQLAlchemy's
per-execution work (cache key, parameter processing, result wrapping): about 45 µs on SQLite and
130 µs on PostgreSQL measured here, more than SQLite needs to run the statement itself. A
:class:`Statement` is compiled by SQLAlchemy once per dialect; afterwards only its bind processors
run (datetimes and booleans as SQLite stores them), and the cursor does the rest. psycopg prepares
a statement on the server after a few executions, and pipelines ``executemany``.

Used inside a transaction begun by SQLAlchemy, on the same DBAPI connection.
"""
from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from math import isfinite
from typing import Any, Iterable, Optional, Sequence, cast

import orjson
from sqlalchemy.engine import Connection


class Statement:
    """One SQLAlchemy Core statement, compiled once per dialect, executed on the DBAPI cursor."""

    __slots__ = ("stmt", "keys", "plan_each_run", "_compiled")
    # per dialect: (SQL, positional parameter names or None, bind processors, values of literal binds)

    def __init__(self, stmt, keys: Optional[Sequence[str]] = None, plan_each_run: bool = False):
        self.stmt = stmt
        self.keys = list(keys) if keys is not None else None  # the columns of an INSERT, in order
        # PostgreSQL: never prepared, so planned with its values and the tables' current size each run.
        # For a join whose best plan changes as the tables grow: a generic plan made while a new
        # database's tables were nearly empty would scan them whole until the next ANALYZE.
        self.plan_each_run = plan_each_run
        self._compiled: dict[str, tuple[str, Optional[list[str]], dict, dict]] = {}

    def _for(self, conn: Connection) -> tuple[str, Optional[list[str]], dict, dict]:
        dialect = conn.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            c = self.stmt.compile(dialect=dialect, column_keys=self.keys)
            processors = {k: p for k, p in c._bind_processors.items() if p is not None}
            names = list(c.positiontup) if c.positional else None
            # binds SQLAlchemy made for literals (e.g. ``deleted = false``), with their values
            literals = {name: b.value for b, name in c.bind_names.items() if b.value is not None and not b.required}
            compiled = self._compiled[dialect.name] = (c.string, names, processors, literals)
        return compiled

    @staticmethod
    def _params(compiled, values: dict) -> Any:
        _sql, names, processors, literals = compiled
        if literals:
            values = {**literals, **values}
        if names is not None:  # qmark (sqlite3)
            return tuple(processors[n](values[n]) if n in processors else values[n] for n in names)
        if processors:
            return {k: (processors[k](v) if k in processors else v) for k, v in values.items()}
        return values

    def execute(self, conn: Connection, values: dict):
        """Run once; returns the DBAPI cursor (``fetchone`` / ``fetchall`` give plain tuples)."""
        return run_pipelined(conn, [self.bind(conn, values)])[0]

    def bind(self, conn: Connection, values: dict) -> tuple:
        """(SQL, parameters[, execute options]) for the DBAPI cursor, e.g. to send in a pipeline with others."""
        compiled = self._for(conn)
        if self.plan_each_run and conn.dialect.name == "postgresql":
            return compiled[0], self._params(compiled, values), _UNPREPARED
        return compiled[0], self._params(compiled, values)

    def executemany(self, conn: Connection, rows: Iterable[dict]) -> None:
        compiled = self._for(conn)
        params = [self._params(compiled, r) for r in rows]
        if params:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None  # an open Connection has its DBAPI connection
            dbapi.cursor().executemany(compiled[0], params)


class ArrayInsert:
    """PostgreSQL: any number of rows into ``table`` as one INSERT, each column bound as one array and
    expanded by ``unnest``. Unlike COPY (a round trip to start it and one to end it), such statements
    can share one pipeline, so a transaction's new rows, versions and index rows reach the server in
    one round trip; the server still inserts them as one set, not one INSERT per row.

    ``json_rows``: the rows go as one JSON text instead, expanded by ``json_populate_recordset``
    (for tables of short values: index and dose rows). orjson writes them in C, where psycopg's
    array dumpers spend Python time on every column: measured on 60 index rows, 0.16 against 0.42 ms
    of client CPU per INSERT, for 0.1 ms more of server CPU. Rows JSON cannot carry exactly (numbers
    that are not finite or not floats, times with a zone) go as arrays."""

    __slots__ = ("sql", "keys", "_numeric", "_times", "_json_sql")

    def __init__(self, table, keys: Optional[Sequence[str]] = None, json_rows: bool = False):
        from sqlalchemy.dialects import postgresql

        dialect = postgresql.dialect()
        self.keys = list(keys or table.c.keys())
        # %(k)b: each array sent in binary; as text, every quote of every JSON document is escaped char by char
        casts = ", ".join(f"CAST(%({k})b AS {table.c[k].type.compile(dialect=dialect)}[])" for k in self.keys)
        columns = ", ".join(self.keys)
        self.sql = f"INSERT INTO {table.name} ({columns}) SELECT * FROM unnest({casts})"
        self._json_sql = (f"INSERT INTO {table.name} ({columns}) SELECT {columns} "
                          f"FROM json_populate_recordset(NULL::{table.name}, CAST(%(rows)s AS json))") if json_rows else None
        # an array holds one type: numbers of float columns come as int, float or Decimal
        self._numeric = {k for k in self.keys if _python_type(table.c[k].type) is float}
        self._times = {k for k in self.keys if _python_type(table.c[k].type) is datetime}

    def bind(self, rows: Sequence[dict]) -> tuple[str, dict]:
        if self._json_sql is not None:
            text = self._json(rows)
            if text is not None:
                return self._json_sql, {"rows": text}
        params = {k: [r.get(k) for r in rows] for k in self.keys}
        for k in self._numeric:
            params[k] = [None if v is None else float(v) for v in params[k]]
        return self.sql, params

    def _json(self, rows: Sequence[dict]) -> Optional[str]:
        """The rows as a JSON array of objects, or None when JSON would not carry a value exactly."""
        for k in self._numeric:  # orjson writes NaN and infinities as null; a Decimal it refuses
            for r in rows:
                v = r.get(k)
                kind = type(v)
                if kind is float:
                    if not isfinite(cast(float, v)):
                        return None
                elif kind is not int and v is not None:
                    return None
        for k in self._times:  # the columns are times without zone (UTC), which would drop an offset
            for r in rows:
                v = r.get(k)
                if v is not None and (type(v) is not datetime or v.tzinfo is not None):
                    return None
        try:
            return orjson.dumps(rows).decode()
        except TypeError:  # a value orjson does not take (an integer beyond 64 bits)
            return None


def _python_type(sqltype) -> Optional[type]:
    try:
        return sqltype.python_type
    except NotImplementedError:
        return None


_UNPREPARED = {"prepare": False}  # psycopg: not a prepared statement


def in_one(statements: Sequence[tuple]) -> list[tuple]:
    """PostgreSQL: ``statements`` (writes, no results wanted) as few statements of data-modifying CTEs
    (PostgreSQL 7.8.4): ``WITH w0 AS (…), w1 AS (…) SELECT 1``, their parameters renamed apart.

    A statement sent costs psycopg about a tenth of a millisecond whatever it does (the query and
    its result handled in Python): a stored object's dozen inserts cost more there than in the
    server. All parts of a statement run on the same snapshot, so none may read, change or delete
    rows another part writes; inserts that refer to each other are fine, as foreign keys are
    checked when the whole statement ends. A statement holds as many parts, in order, as psycopg
    still keeps its parse of (``_CACHED_PARAMS`` parameters, ``_CACHED_LENGTH`` bytes): a longer one
    would be parsed again at each execution. So parts inserting rows that others refer to come first."""
    group: list[tuple] = []
    out, params, length = [], 0, len(_TAIL)
    for statement in statements:
        sql, values, *options = statement
        if options or not isinstance(values, dict):
            raise ValueError("in_one takes prepared statements with named parameters only")
        n, size = len(values), len(sql) + 12 + 6 * len(values)  # "wNN AS (…), " and the renamed placeholders
        if group and (params + n > _CACHED_PARAMS or length + size > _CACHED_LENGTH):
            out.append(_joined(group))
            group, params, length = [], 0, len(_TAIL)
        group.append(statement)
        params, length = params + n, length + size
    if group:
        out.append(_joined(group))
    return out


# psycopg keeps the parse of a query of up to 50 parameters and 4096 bytes (MAX_CACHED_STATEMENT_PARAMS,
# MAX_CACHED_STATEMENT_LENGTH in psycopg/_queries.py)
_CACHED_PARAMS, _CACHED_LENGTH = 50, 4096


def _joined(statements: list[tuple]) -> tuple:
    if len(statements) == 1:
        return statements[0]
    params: dict = {}
    for i, (_sql, values) in enumerate(statements):
        prefix = f"w{i}_"
        params.update((prefix + k, v) for k, v in values.items())
    return _combined(tuple(s[0] for s in statements)), params


_PLACEHOLDER = re.compile(r"(?<!%)%\((\w+)\)([sbt])")  # psycopg's named placeholders: %(name)s / b / t


@lru_cache(maxsize=256)
def _combined(texts: tuple[str, ...]) -> str:
    parts = []
    for i, sql in enumerate(texts):
        renamed = _PLACEHOLDER.sub(rf"%(w{i}_\1)\2", sql)
        if renamed.startswith("WITH ") and renamed.endswith(_TAIL):  # CTEs already: theirs join ours (a WITH
            parts.append(renamed[len("WITH "):-len(_TAIL)])  # holding data-modifying ones must be outermost)
        else:
            parts.append(f"w{i} AS ({renamed})")
    return "WITH " + ", ".join(parts) + _TAIL


_TAIL = " SELECT 1"


def run_pipelined(conn: Connection, statements: Sequence[tuple]) -> list:
    """Run (SQL, parameters[, execute options]) in order; returns each one's DBAPI cursor, to fetch from.

    PostgreSQL gets them in one psycopg pipeline: one round trip, where a transaction's first one
    also carries its BEGIN. SQLite runs them one after the other (no round trips to save)."""
    if not statements:
        return []
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None  # an open Connection has its DBAPI connection
    if len(statements) == 1 or conn.dialect.name != "postgresql":
        cursors = [dbapi.cursor() for _ in statements]
        for cursor, (sql, params, *options) in zip(cursors, statements, strict=True):
            cursor.execute(sql, params, **(options[0] if options else {}))
        return cursors
    cursors = []
    with dbapi.pipeline():
        for sql, params, *options in statements:
            cursor = dbapi.cursor()
            cursor.execute(sql, params, **(options[0] if options else {}))
            cursors.append(cursor)
    return cursors
