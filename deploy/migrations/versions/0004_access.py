"""record rules (row-level security), restriction, loans and applied policies

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00

Row-level security is the backstop behind the record rules of shared/security/authorization.yaml. The services connect
as the owner of the tables, which row-level security does not bind; an agent's or an institute's transaction
switches with SET LOCAL ROLE to a role that it does bind (shared/security/access.py), so a query that forgot its filter
still sees only the caller's rows.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGENT = "sailo_agent"
INSTITUTE = "sailo_institute"
# The tables an agent's read touches; every one but contacts is reached through its contact.
AGENT_TABLES = ("records.contact_events", "records.parties", "records.messages", "records.artifacts")


def _ensure_role(name: str) -> None:
    """The role exists and the service's login role may SET ROLE to it.

    A DBA may have made both already (the embedded cluster does, at initdb); otherwise a role that may create
    roles makes them here. Roles belong to the cluster, not the database, so another database may be creating
    the same role right now: the duplicate is caught, not just checked for.
    """
    advice = f"as a superuser run: CREATE ROLE {name} NOLOGIN; GRANT {name} TO %s"
    # Only this module's constants are interpolated, never input.
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                BEGIN
                    CREATE ROLE {name} NOLOGIN;
                EXCEPTION
                    WHEN duplicate_object OR unique_violation THEN NULL;
                    WHEN insufficient_privilege THEN
                        RAISE EXCEPTION 'database role {name} is missing and % may not create it; {advice}',
                            current_user, current_user;
                END;
            END IF;
            IF NOT pg_has_role(current_user, '{name}', 'MEMBER') THEN
                BEGIN
                    EXECUTE format('GRANT {name} TO %I', current_user);
                EXCEPTION WHEN insufficient_privilege THEN
                    RAISE EXCEPTION '% may not use database role {name}; {advice}', current_user, current_user;
                END;
            END IF;
        END $$
        """  # noqa: S608
    )


def upgrade() -> None:
    op.add_column("contacts", sa.Column("restricted_at", sa.DateTime(timezone=True)), schema="records")

    op.execute("CREATE SCHEMA IF NOT EXISTS export")
    op.create_table(
        "loans",
        sa.Column("loan_id", sa.Uuid(), nullable=False),
        sa.Column("institute_id", sa.String(length=64), nullable=False),
        sa.Column("agreement_ref", sa.String(length=100), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=False),
        sa.Column("study_ends_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", name=op.f("pk_loans")),
        schema="export",
    )
    op.create_index("ix_loans_institute", "loans", ["institute_id"], unique=False, schema="export")

    op.execute("CREATE SCHEMA IF NOT EXISTS policy")
    op.create_table(
        "applied",
        sa.Column("register", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("latest_version", sa.String(length=40), nullable=False),
        sa.Column(
            "first_applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("first_applied_by", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("register", "digest", name=op.f("pk_applied")),
        schema="policy",
    )

    _ensure_role(AGENT)
    _ensure_role(INSTITUTE)
    for role in (AGENT, INSTITUTE):
        # Every audited step writes its audit entry in its own transaction, under the caller's role.
        op.execute(f"GRANT USAGE ON SCHEMA audit TO {role}")
        op.execute(f"GRANT INSERT ON audit.outbox TO {role}")
        # INSERT ... RETURNING id needs the right to read that one column back; no entry is readable.
        op.execute(f"GRANT SELECT (id) ON audit.outbox TO {role}")
        op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA audit TO {role}")

    op.execute(f"GRANT USAGE ON SCHEMA records, keys TO {AGENT}")
    op.execute(f"GRANT SELECT ON records.contacts, {', '.join(AGENT_TABLES)}, keys.data_keys TO {AGENT}")
    op.execute("ALTER TABLE records.contacts ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY agent_own_contacts ON records.contacts FOR SELECT TO {AGENT} "
        "USING (agent_id = current_setting('sailo.agent_id', true))"
    )
    # The subquery reads contacts under the same policy, so it finds only the agent's own.
    for table in (*AGENT_TABLES, "keys.data_keys"):
        name = table.split(".")[1]
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY agent_own_{name} ON {table} FOR SELECT TO {AGENT} "  # noqa: S608 (constants)
            f"USING (EXISTS (SELECT 1 FROM records.contacts c WHERE c.contact_ref = {name}.contact_ref))"
        )

    op.execute(f"GRANT USAGE ON SCHEMA export TO {INSTITUTE}")
    op.execute(f"GRANT SELECT ON export.loans TO {INSTITUTE}")
    op.execute("ALTER TABLE export.loans ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY institute_own_loans ON export.loans FOR SELECT TO {INSTITUTE} "
        "USING (institute_id = current_setting('sailo.institute_id', true))"
    )


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS institute_own_loans ON export.loans")
    for table in (*AGENT_TABLES, "keys.data_keys"):
        name = table.split(".")[1]
        op.execute(f"DROP POLICY IF EXISTS agent_own_{name} ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP POLICY IF EXISTS agent_own_contacts ON records.contacts")
    op.execute("ALTER TABLE records.contacts DISABLE ROW LEVEL SECURITY")
    for role in (AGENT, INSTITUTE):
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA records, keys, audit, export FROM {role}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA audit FROM {role}")
        op.execute(f"REVOKE USAGE ON SCHEMA records, keys, audit, export FROM {role}")
    op.drop_table("applied", schema="policy")
    op.execute("DROP SCHEMA IF EXISTS policy")
    op.drop_index("ix_loans_institute", table_name="loans", schema="export")
    op.drop_table("loans", schema="export")
    op.execute("DROP SCHEMA IF EXISTS export")
    op.drop_column("contacts", "restricted_at", schema="records")
