"""retention.recording_due_times: the view through which other services read when retention will delete a
contact's call recording

Retention owns and alone writes retention.schedule. Export's selection of recordings for a research loan needs
one fact from it (a recording whose retention ends before the study does is excluded by default) and reads it
through this view instead of naming the table: retention may change its schedule's shape as long as the view
keeps answering the same question.

Columns: contact_ref, due_at. One row per scheduled deletion of a part of a contact's recording that has a due
time (a contact may have more than one; a reader takes the earliest). Deletions done, held or waiting for their
trigger (no due time yet) are not in it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE VIEW retention.recording_due_times AS"
        " SELECT contact_ref, due_at FROM retention.schedule"
        " WHERE artifact_class = 'recording' AND state = 'scheduled' AND due_at IS NOT NULL"
    )
    op.execute(
        "COMMENT ON VIEW retention.recording_due_times IS"
        " 'Owned by retention: when each scheduled deletion of a contact''s call recording is due.'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS retention.recording_due_times")
