"""A changed policy file is an audited step: the first service to start with it records a policy_changed entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.platform.clock import SystemClock
from shared.policy.history import record_applied_policies, register_ref
from shared.policy.loader import load_policies
from tests.integration.conftest import Ingest, eventually

pytestmark = pytest.mark.integration


async def test_a_changed_policy_is_recorded_once_with_an_audit_entry(ingest: Ingest, tmp_path: Path) -> None:
    sessionmaker = ingest.app.state.runtime.sessionmaker
    current = load_policies(ingest.settings.policy_dir)
    # The running ingest service recorded the current files when it started: nothing new now.
    assert await record_applied_policies(sessionmaker, current, service="ingest", clock=SystemClock()) == []

    shutil.copytree(ingest.settings.policy_dir, tmp_path / "policies")
    edited = tmp_path / "policies" / "statfi-chat.yaml"
    content = edited.read_text(encoding="utf-8")
    assert "period: P35D" in content
    edited.write_text(content.replace("period: P35D", "period: P30D", 1), encoding="utf-8")
    changed = load_policies(tmp_path / "policies")

    first = await record_applied_policies(sessionmaker, changed, service="retention", clock=SystemClock())
    again = await record_applied_policies(sessionmaker, changed, service="dsr", clock=SystemClock())
    assert (first, again) == (["statfi-chat"], [])

    async def audited() -> list[str]:
        async with sessionmaker() as session:
            rows = await session.scalars(
                text(
                    "SELECT entry FROM audit.entries WHERE entry::jsonb->>'action' = 'policy_changed'"
                    " AND entry::jsonb->>'service' = 'retention'"
                )
            )
            return list(rows.all())

    entries = await eventually(audited)
    assert len(entries) == 1
    assert str(register_ref("statfi-chat")) in entries[0]
