"""dsr.disclosures: which research loans included a contact, as the export service announces them

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "disclosures",
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("artifact_class", sa.String(length=40), nullable=False),
        sa.Column("institute_name", sa.String(length=200), nullable=False),
        sa.Column("agreement_ref", sa.String(length=100), nullable=False),
        sa.Column("lent_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "contact_ref", "artifact_class", name=op.f("pk_disclosures")),
        schema="dsr",
    )
    op.create_index("ix_disclosures_contact", "disclosures", ["contact_ref"], schema="dsr")


def downgrade() -> None:
    op.drop_index("ix_disclosures_contact", table_name="disclosures", schema="dsr")
    op.drop_table("disclosures", schema="dsr")
