"""PostgreSQL extended statistics on the search index: parameter name, system and code are
correlated (code 73569-6 only occurs with param code and system LOINC), and without these the
planner multiplies their selectivities, underestimates common codes by 100x and picks hash plans
that read every match instead of stopping after one page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:05:00
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATISTICS = {
    "st_resource": ("resource", "rtype, deleted"),
    "st_token": ("idx_token", "rtype, param, code, system"),
    "st_string": ("idx_string", "rtype, param, norm"),
    "st_date": ("idx_date", "rtype, param, wide"),
    "st_reference": ("idx_reference", "rtype, param, target_type"),
    "st_quantity": ("idx_quantity", "rtype, param, code, system"),
    "st_code_quantity": ("idx_code_quantity", "rtype, param, code, system"),
    "st_uri": ("idx_uri", "rtype, param, uri"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (table, columns) in STATISTICS.items():
        op.execute(f"CREATE STATISTICS IF NOT EXISTS {name} (dependencies, mcv) ON {columns} FROM {table}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in STATISTICS:
        op.execute(f"DROP STATISTICS IF EXISTS {name}")
