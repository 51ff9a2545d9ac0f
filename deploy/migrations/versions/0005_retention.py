"""retention: contact facts, schedule, certificates of deletion, blob deletions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS retention")
    op.create_table(
        "contact_facts",
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_history", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("message_times", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=True),
        sa.Column("artifact_classes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("contact_ref", name=op.f("pk_contact_facts")),
        schema="retention",
    )
    op.create_table(
        "schedule",
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("artifact_class", sa.String(length=40), nullable=False),
        sa.Column("item", sa.String(length=40), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("trigger_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("contact_ref", "artifact_class", "item", name=op.f("pk_schedule")),
        schema="retention",
    )
    op.create_index(
        "ix_schedule_due",
        "schedule",
        ["due_at"],
        unique=False,
        schema="retention",
        postgresql_where=sa.text("state = 'scheduled' AND due_at IS NOT NULL"),
    )
    op.create_table(
        "certificates",
        sa.Column("certificate_id", sa.Uuid(), nullable=False),
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("artifact_class", sa.String(length=40), nullable=False),
        sa.Column("item", sa.String(length=40), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("trigger_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ciphertext_sha256", sa.String(length=64), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_certificates")),
        schema="retention",
    )
    op.create_index(
        "ix_certificates_register_done",
        "certificates",
        ["register", "done_at"],
        unique=False,
        schema="retention",
    )
    op.create_index(
        "ix_certificates_contact", "certificates", ["contact_ref"], unique=False, schema="retention"
    )
    # A certificate is evidence: like the audit log, the database refuses to change or remove one.
    op.execute(
        """
        CREATE FUNCTION retention.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'retention.certificates is append-only: % refused', TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER certificates_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON retention.certificates "
        "FOR EACH STATEMENT EXECUTE FUNCTION retention.refuse_change()"
    )
    op.execute("ALTER TABLE retention.certificates ENABLE ALWAYS TRIGGER certificates_append_only")
    op.create_table(
        "holds",
        sa.Column("hold_number", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("legal_reference", sa.String(length=200), nullable=False),
        sa.Column("placed_by", sa.Uuid(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("hold_number", name=op.f("pk_holds")),
        schema="retention",
    )
    op.create_index(
        "ix_holds_active",
        "holds",
        ["scope", "target"],
        unique=False,
        schema="retention",
        postgresql_where=sa.text("lifted_at IS NULL"),
    )
    op.create_table(
        "blob_deletions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_deletions")),
        schema="retention",
    )


def downgrade() -> None:
    op.drop_table("blob_deletions", schema="retention")
    op.drop_index("ix_holds_active", table_name="holds", schema="retention")
    op.drop_table("holds", schema="retention")
    op.execute("DROP TRIGGER IF EXISTS certificates_append_only ON retention.certificates")
    op.drop_index("ix_certificates_contact", table_name="certificates", schema="retention")
    op.drop_index("ix_certificates_register_done", table_name="certificates", schema="retention")
    op.drop_table("certificates", schema="retention")
    op.execute("DROP FUNCTION IF EXISTS retention.refuse_change()")
    op.drop_index("ix_schedule_due", table_name="schedule", schema="retention")
    op.drop_table("schedule", schema="retention")
    op.drop_table("contact_facts", schema="retention")
    op.execute("DROP SCHEMA IF EXISTS retention")
