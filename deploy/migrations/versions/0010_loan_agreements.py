"""export.loans: the whole agreement (institute, contact person, legal basis, return or destroy) and four-eyes
approval

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = {"institute_name": 200, "contact_person": 200, "legal_basis": 300, "commitment": 10}


def upgrade() -> None:
    for name, length in _TEXT.items():
        # Loans set up before these columns existed are drafts that never left; they read as not stated.
        op.add_column(
            "loans",
            sa.Column(name, sa.String(length=length), nullable=False, server_default="not stated"[:length]),
            schema="export",
        )
        op.alter_column("loans", name, server_default=None, schema="export")
    op.add_column("loans", sa.Column("approved_by", sa.Uuid(), nullable=True), schema="export")
    op.add_column(
        "loans", sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True), schema="export"
    )


def downgrade() -> None:
    op.drop_column("loans", "approved_at", schema="export")
    op.drop_column("loans", "approved_by", schema="export")
    for name in reversed(list(_TEXT)):
        op.drop_column("loans", name, schema="export")
