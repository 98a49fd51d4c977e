"""The outbound queue in the main database: dose results for the EHR are queued in the transaction
that records them (no window between the commit and the queueing), and every worker, on any
host, sends from the same queues.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_message",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("corrected", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("sent", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_message"),
        sa.UniqueConstraint("destination", "key", name="uq_outbox_message_destination_key"),
    )
    op.create_index("ix_outbox_message_queue", "outbox_message", ["destination", "status", "id"])
    op.create_table(
        "outbox_lease",
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("destination", name="pk_outbox_lease"),
    )


def downgrade() -> None:
    op.drop_table("outbox_lease")
    op.drop_index("ix_outbox_message_queue", table_name="outbox_message")
    op.drop_table("outbox_message")
