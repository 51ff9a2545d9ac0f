"""export: lent items, the loan's package, attestations, notices to institutes, flags from DSR decisions, and
the register of other disclosures

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSTITUTE = "sailo_institute"
_TS = sa.DateTime(timezone=True)
# The institute's own rows of a table with a loan_id: export.loans is itself filtered to the institute's loans
# under this role, so the subquery sees only those.
_OWN_LOAN = "loan_id IN (SELECT loan_id FROM export.loans)"


def upgrade() -> None:
    for column in (
        sa.Column("selection", postgresql.JSONB(), nullable=True),
        sa.Column("selected_at", _TS, nullable=True),
        sa.Column("package_blob_key", sa.String(length=300), nullable=True),
        sa.Column("package_sha256", sa.String(length=64), nullable=True),
        sa.Column("package_bytes", sa.BigInteger(), nullable=True),
        sa.Column("package_key", sa.LargeBinary(), nullable=True),
        sa.Column("manifest", postgresql.JSONB(), nullable=True),
        sa.Column("packaged_at", _TS, nullable=True),
        sa.Column("key_released_at", _TS, nullable=True),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("lent_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("reminded_at", _TS, nullable=True),
        sa.Column("overdue_at", _TS, nullable=True),
        sa.Column("closed_at", _TS, nullable=True),
        sa.Column("closed_by", sa.Uuid(), nullable=True),
    ):
        op.add_column("loans", column, schema="export")

    op.create_table(
        "loan_items",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("artifact_class", sa.String(length=40), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("overridden_exclusion", sa.String(length=40), nullable=True),
        sa.Column("override_justification", sa.String(length=500), nullable=True),
        sa.Column("override_by", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("accounted_at", _TS, nullable=True),
        sa.Column("attestation_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_loan_items")),
        sa.ForeignKeyConstraint(["loan_id"], ["export.loans.loan_id"], name=op.f("fk_loan_items_loan")),
        sa.UniqueConstraint("loan_id", "contact_ref", "artifact_class", name=op.f("uq_loan_items_contact")),
        schema="export",
    )
    op.create_index("ix_loan_items_contact", "loan_items", ["contact_ref"], schema="export")

    op.create_table(
        "attestations",
        sa.Column("attestation_id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("destroyed_on", sa.Date(), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=True),
        sa.Column("tool", sa.String(length=200), nullable=True),
        sa.Column("signer", sa.String(length=200), nullable=False),
        sa.Column("whole_loan", sa.Boolean(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("attested_by", sa.Uuid(), nullable=False),
        sa.Column("attested_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("attestation_id", name=op.f("pk_attestations")),
        sa.ForeignKeyConstraint(["loan_id"], ["export.loans.loan_id"], name=op.f("fk_attestations_loan")),
        schema="export",
    )

    op.create_table(
        "notices",
        sa.Column("notice_id", sa.Uuid(), nullable=False),
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.String(length=64), nullable=False),
        sa.Column("source_event_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", _TS, nullable=False),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("acknowledged_by", sa.Uuid(), nullable=True),
        sa.Column("escalated_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("notice_id", name=op.f("pk_notices")),
        sa.ForeignKeyConstraint(["loan_id"], ["export.loans.loan_id"], name=op.f("fk_notices_loan")),
        sa.UniqueConstraint("source_event_id", "item_id", name=op.f("uq_notices_source_item")),
        schema="export",
    )
    op.create_index(
        "ix_notices_open",
        "notices",
        ["issued_at"],
        schema="export",
        postgresql_where=sa.text("acknowledged_at IS NULL"),
    )

    op.create_table(
        "contact_flags",
        sa.Column("contact_ref", sa.Uuid(), nullable=False),
        sa.Column("flag", sa.String(length=20), nullable=False),
        sa.Column("case_number", sa.String(length=20), nullable=False),
        sa.Column("set_at", _TS, nullable=False),
        sa.Column("cleared_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("contact_ref", "flag", "case_number", name=op.f("pk_contact_flags")),
        schema="export",
    )

    op.create_table(
        "disclosures",
        sa.Column("disclosure_id", sa.Uuid(), nullable=False),
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("recipient_kind", sa.String(length=30), nullable=False),
        sa.Column("legal_basis", sa.String(length=300), nullable=False),
        sa.Column("case_reference", sa.String(length=100), nullable=False),
        sa.Column("disclosed_on", sa.Date(), nullable=False),
        sa.Column("contact_refs", postgresql.ARRAY(sa.Uuid()), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("disclosure_id", name=op.f("pk_disclosures")),
        schema="export",
    )

    # The institute reads its own items, attestations and notices, attests and acknowledges; its steps write
    # their events to the outbox in the same transaction.
    for table in ("loan_items", "attestations", "notices"):
        op.execute(f"GRANT SELECT ON export.{table} TO {INSTITUTE}")
        op.execute(f"ALTER TABLE export.{table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY institute_own_{table} ON export.{table} TO {INSTITUTE} USING ({_OWN_LOAN})"
        )
    op.execute(f"GRANT INSERT ON export.attestations TO {INSTITUTE}")
    op.execute(f"GRANT UPDATE (status, accounted_at, attestation_id) ON export.loan_items TO {INSTITUTE}")
    op.execute(f"GRANT UPDATE (acknowledged_at, acknowledged_by) ON export.notices TO {INSTITUTE}")
    op.execute(f"GRANT USAGE ON SCHEMA outbox TO {INSTITUTE}")
    op.execute(f"GRANT INSERT ON outbox.events TO {INSTITUTE}")
    # The insert returns the row's generated columns, which needs SELECT on just those.
    op.execute(f"GRANT SELECT (id, created_at) ON outbox.events TO {INSTITUTE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA outbox TO {INSTITUTE}")
    # Fetching its package key records the first release on the institute's own loan, in the same transaction
    # as the audit entry, so the release and its record commit together; the rest of the loan stays read-only.
    op.execute(f"GRANT UPDATE (key_released_at) ON export.loans TO {INSTITUTE}")
    op.execute(
        f"CREATE POLICY institute_key_release ON export.loans FOR UPDATE TO {INSTITUTE} "
        "USING (institute_id = current_setting('sailo.institute_id', true)) "
        "WITH CHECK (institute_id = current_setting('sailo.institute_id', true))"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS institute_key_release ON export.loans")
    op.execute(f"REVOKE UPDATE (key_released_at) ON export.loans FROM {INSTITUTE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM {INSTITUTE}")
    op.execute(f"REVOKE ALL ON outbox.events FROM {INSTITUTE}")
    op.execute(f"REVOKE USAGE ON SCHEMA outbox FROM {INSTITUTE}")
    for table in ("loan_items", "attestations", "notices"):
        op.execute(f"DROP POLICY IF EXISTS institute_own_{table} ON export.{table}")
        op.execute(f"REVOKE ALL ON export.{table} FROM {INSTITUTE}")
    op.drop_table("disclosures", schema="export")
    op.drop_table("contact_flags", schema="export")
    op.drop_index("ix_notices_open", table_name="notices", schema="export")
    op.drop_table("notices", schema="export")
    op.drop_table("attestations", schema="export")
    op.drop_index("ix_loan_items_contact", table_name="loan_items", schema="export")
    op.drop_table("loan_items", schema="export")
    for name in reversed(
        [
            "selection",
            "selected_at",
            "package_blob_key",
            "package_sha256",
            "package_bytes",
            "package_key",
            "manifest",
            "packaged_at",
            "key_released_at",
            "delivered_at",
            "lent_on",
            "due_on",
            "reminded_at",
            "overdue_at",
            "closed_at",
            "closed_by",
        ]
    ):
        op.drop_column("loans", name, schema="export")
