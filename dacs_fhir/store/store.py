"""The store: a SQLAlchemy engine, its Alembic migrations and transactions (issue 3)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from .transaction import Transaction

MIGRATIONS = Path(__file__).with_name("migrations")


class Store:
    """``Store(url)``: ``sqlite:///file`` (embedded default) or ``postgresql+psycopg://…``.

    ``schema`` (PostgreSQL) puts every table in that schema, e.g. one per test run.
    """

    def __init__(self, database_url: str, schema: Optional[str] = None, **engine_options):
        url = make_url(database_url)
        self.url = url
        if url.get_backend_name() == "sqlite":
            self.engine = create_engine(url, **engine_options)
            _sqlite_transactions(self.engine)
        else:
            # searches must be planned with their values: a generic plan (psycopg prepares a statement
            # after five runs) cannot tell a patient id from a code that a fifth of all rows carry
            options = "-c plan_cache_mode=force_custom_plan"
            if url.query.get("options"):  # e.g. ?options=-csearch_path%3Dtenant: keep it, connect_args would drop it
                options = f"{url.query['options']} {options}"
                url = url.difference_update_query(["options"])
            if schema:
                options += f" -c search_path={schema}"
            engine_options.setdefault("connect_args", {})["options"] = options
            engine_options.setdefault("pool_pre_ping", True)
            self.engine: Engine = create_engine(url, **engine_options)

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (Alembic, run on this store's engine)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One database transaction: committed when the block ends, rolled back on an exception."""
        with self.engine.begin() as conn:
            tx = Transaction(conn)
            yield tx
            tx.flush()

    def dispose(self) -> None:
        self.engine.dispose()


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
