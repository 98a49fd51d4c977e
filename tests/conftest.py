"""Shared fixtures: corpus location, a database URL per test (SQLite, or a fresh PostgreSQL schema
when DACS_DATABASE_URL is set), settings in a temporary data folder."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared vendor corpus (``../shared/corpus``, README.md); tests that need it skip where it is absent."""
    if not (CORPUS / "MANIFEST.md").is_file():
        pytest.skip(f"vendor corpus not found at {CORPUS}")
    return CORPUS


def _postgres_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def database_url(tmp_path):
    """A private database: SQLite in tmp_path, or a throw-away schema in DACS_DATABASE_URL's PostgreSQL."""
    base = os.environ.get("DACS_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'dacs.sqlite'}"
        return
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _postgres_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(tmp_path, database_url):
    from dacs_fhir.config import Settings

    s = Settings.from_env({"DACS_DATA_DIR": str(tmp_path / "data"), "DACS_HTTP": "127.0.0.1:0", "DACS_DICOM": "127.0.0.1:0", "DACS_MLLP": "127.0.0.1:0"})
    s.database_url = database_url
    s.broker_url = os.environ.get("DACS_BROKER_URL") or None
    return s


@pytest.fixture
def store(database_url):
    """A migrated store on the test's private database."""
    from dacs_fhir.store import Store

    s = Store(database_url)
    s.upgrade()
    yield s
    s.dispose()
