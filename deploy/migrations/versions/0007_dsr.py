"""dsr: data-subject requests, their candidate contacts, access packages

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS dsr")
    op.execute("CREATE SEQUENCE dsr.case_number_seq")
    op.create_table(
        "requests",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("case_number", sa.String(length=20), nullable=False),
        sa.Column("request_type", sa.String(length=20), nullable=False),
        sa.Column("registers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("extension_months", sa.Integer(), nullable=False),
        sa.Column("extension_reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identity_method", sa.String(length=40), nullable=True),
        sa.Column("identity_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("identity_verified_by", sa.Uuid(), nullable=True),
        sa.Column("sealed_requester", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_details", sa.LargeBinary(), nullable=True),
        sa.Column("restriction_ground", sa.String(length=2), nullable=True),
        sa.Column("decisions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restriction_lifts_on", sa.Date(), nullable=True),
        sa.Column("restriction_lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_requests")),
        sa.UniqueConstraint("case_number", name=op.f("uq_requests_case_number")),
        schema="dsr",
    )
    op.create_index("ix_requests_status_last_day", "requests", ["status", "last_day"], schema="dsr")
    op.create_table(
        "candidates",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("matched_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["dsr.requests.request_id"],
            name=op.f("fk_candidates_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "contact_ref", name=op.f("pk_candidates")),
        schema="dsr",
    )
    op.create_table(
        "packages",
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["dsr.requests.request_id"],
            name=op.f("fk_packages_request_id_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_packages")),
        schema="dsr",
    )


def downgrade() -> None:
    op.drop_table("packages", schema="dsr")
    op.drop_table("candidates", schema="dsr")
    op.drop_index("ix_requests_status_last_day", table_name="requests", schema="dsr")
    op.drop_table("requests", schema="dsr")
    op.execute("DROP SEQUENCE dsr.case_number_seq")
    op.execute("DROP SCHEMA IF EXISTS dsr")
