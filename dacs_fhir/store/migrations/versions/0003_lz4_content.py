"""PostgreSQL: resource JSON compressed with lz4 instead of pglz when the server has it (PostgreSQL 14+
built with lz4): every version is written twice (current row and history), and pglz compression was a
measurable share of a write. Existing rows keep their compression until rewritten.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:50:00
"""
from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = (("resource", "content"), ("resource_version", "content"), ("dose_report", "content"))


def _lz4_available(bind) -> bool:
    if bind.dialect.server_version_info < (14,):
        return False
    values = bind.execute(text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    return bool(values) and "lz4" in values


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not _lz4_available(bind):
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
