"""rectifications: corrected customer fields with their earlier values, and supplementary statements

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENT = "sailo_agent"


def upgrade() -> None:
    op.create_table(
        "rectifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("artifact_class", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=True),
        sa.Column("case_number", sa.String(length=20), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_ref"],
            ["records.contacts.contact_ref"],
            name=op.f("fk_rectifications_contact_ref_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rectifications")),
        schema="records",
    )
    op.create_index(
        "ix_rectifications_contact", "rectifications", ["contact_ref", "made_at"], schema="records"
    )
    # An agent reading their own contact sees its supplementary statements, under the same row policy as the
    # other record tables (0004).
    op.execute(f"GRANT SELECT ON records.rectifications TO {AGENT}")
    op.execute("ALTER TABLE records.rectifications ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY agent_own_rectifications ON records.rectifications FOR SELECT TO {AGENT} "  # noqa: S608
        "USING (EXISTS (SELECT 1 FROM records.contacts c WHERE c.contact_ref = rectifications.contact_ref))"
    )


def downgrade() -> None:
    op.drop_index("ix_rectifications_contact", table_name="rectifications", schema="records")
    op.drop_table("rectifications", schema="records")
