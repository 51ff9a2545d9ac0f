"""audit log outbox, append-only entries and checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("entries", "checkpoints")


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS audit")
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("entry", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema="audit",
    )
    op.create_table(
        "entries",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("chained_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("sequence >= 0", name=op.f("ck_entries_sequence_from_zero")),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_entries")),
        sa.UniqueConstraint("event_id", name=op.f("uq_entries_event_id")),
        schema="audit",
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_checkpoints")),
        schema="audit",
    )
    op.create_table(
        "relay_state",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frontier", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("published_checkpoint_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_relay_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_relay_state")),
        schema="audit",
    )
    op.execute("INSERT INTO audit.relay_state (id) VALUES (1)")

    # Append-only in the database itself, not only in the code: any UPDATE, DELETE or TRUNCATE raises,
    # whoever runs it, a superuser included. Statement-level, so even one that matches no row is refused.
    # ENABLE ALWAYS keeps the triggers firing under session_replication_role = replica, the usual way to
    # skip triggers. Dropping them takes DDL (and a trace in the DDL log); the signed checkpoints on the
    # topic make any change to the rows evident even then.
    op.execute(
        """
        CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit.% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()"
        )
        op.execute(f"ALTER TABLE audit.{table} ENABLE ALWAYS TRIGGER {table}_append_only")


def downgrade() -> None:
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON audit.{table}")
    op.execute("DROP FUNCTION IF EXISTS audit.refuse_change()")
    op.drop_table("relay_state", schema="audit")
    op.drop_table("checkpoints", schema="audit")
    op.drop_table("entries", schema="audit")
    op.drop_table("outbox", schema="audit")
    op.execute("DROP SCHEMA IF EXISTS audit")
