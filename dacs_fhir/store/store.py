"""The store: a SQLAlchemy engine, its Alembic migrations and transactions (issue 3)."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from importlib.resources import as_file, files
from typing import Iterator, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError

from .transaction import KeyPool, Transaction

# a package of its own (env.py, script.py.mako, versions/), so that a wheel ships it
MIGRATIONS = "dacs_fhir.store.migrations"


class Store:
    """``Store(url)``: ``sqlite:///file`` (embedded default) or ``postgresql+psycopg://…``.

    ``schema`` (PostgreSQL) puts every table in that schema, e.g. one per test run.

    ``generic_plans`` (PostgreSQL): for a process that writes and does not serve searches (the
    worker). A store serving searches plans every prepared statement with its values: a generic
    plan (psycopg prepares a statement after five runs) cannot tell a patient id from a code that a
    fifth of all rows carry. The write path's statements are key lookups and array INSERTs, whose
    plans do not depend on the values; planning them again on every run was a fifth of the
    server's CPU per stored object.
    """

    def __init__(self, database_url: str, schema: Optional[str] = None, generic_plans: bool = False,
                 **engine_options):
        url = make_url(database_url)
        self.url = url
        self._keys = KeyPool()  # PostgreSQL: keys of new resource rows, drawn ahead
        if url.get_backend_name() == "sqlite":
            _create_private(url.database)
            self.engine: Engine = create_engine(url, **engine_options)
            _sqlite_transactions(self.engine)
        else:
            options = f"-c plan_cache_mode={'auto' if generic_plans else 'force_custom_plan'}"
            if url.query.get("options"):  # e.g. ?options=-csearch_path%3Dtenant: keep it, connect_args would drop it
                options = f"{url.query['options']} {options}"
                url = url.difference_update_query(["options"])
            if schema:
                options += f" -c search_path={schema}"
            engine_options.setdefault("connect_args", {})["options"] = options
            self.engine = create_engine(url, **engine_options)
            if not engine_options.get("pool_pre_ping"):
                _ping_when_idle(self.engine)

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (Alembic, run on this store's engine)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        with as_file(files(MIGRATIONS)) as folder, self.engine.begin() as conn:
            cfg.set_main_option("script_location", str(folder))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One database transaction: committed when the block ends, rolled back on an exception."""
        with self.engine.begin() as conn:
            tx = Transaction(conn, self._keys)
            yield tx
            tx.flush()

    def dispose(self) -> None:
        self.engine.dispose()


def _create_private(database: Optional[str]) -> None:
    """Create a new SQLite database file with mode 0600 (SQLite gives its -wal and -shm files the
    mode of the database file); an existing file is left as it is."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)  # explicit: os.open's mode is filtered by the umask
    finally:
        os.close(fd)


def _ping_when_idle(engine: Engine, idle: float = 2.0) -> None:
    """Test a pooled connection before use when it has been idle ``idle`` seconds or more (the server
    may have restarted meanwhile); a dead one is replaced (SQLAlchemy's pessimistic disconnect
    handling, applied only after idle time: ``pool_pre_ping`` would cost a round trip per checkout,
    one in ten of a stored object's). A connection that dies while in use fails its statement,
    which the pipeline retries as a transient error."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection, record):
        if record is not None:
            record.info["dacs_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection, record, _proxy):
        since = record.info.get("dacs_idle_since")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()  # SELECT 1 began a transaction
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is unusable
            raise DisconnectionError(f"pooled connection is dead: {type(exc).__name__}") from exc


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite: real BEGIN IMMEDIATE transactions (writers queue instead of failing on lock upgrade),
    working SAVEPOINTs for batch entries, WAL so readers do not block (SQLAlchemy pysqlite notes).

    ``synchronous = FULL``: every commit is fsync'd to the WAL before it returns, because an HL7
    AA or a FHIR 201 is sent on the strength of that commit (NORMAL could lose the last
    transactions on power loss)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
