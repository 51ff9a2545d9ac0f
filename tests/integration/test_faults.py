"""The fault harness in short (`make faults` runs it at 100,000 events): every service as its own process on an
embedded PostgreSQL and broker of its own, a paced stream of a few thousand events, and while it runs one
kill -9 and one forced crash point for each kind of process, database sessions terminated, PostgreSQL restarted
and the broker stopped for a while. Then what the platform was told (202) is held against the database and the
topics: nothing lost, nothing done twice, every expired contact deleted and announced once.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.faults.cluster import KINDS
from tests.faults.harness import Plan, fault_run

pytestmark = pytest.mark.integration


async def test_crashes_and_outages_lose_nothing_and_do_nothing_twice(tmp_path: Path) -> None:
    plan = Plan(
        events=2_000,
        crashes=len(KINDS),
        outage_seconds=6,
        connection_terminations=1,
        postgres_restarts=1,
        baseline=False,
        rate=300,
        seed=7,
    )
    out = io.StringIO()
    report = await fault_run(plan, out, tmp_path / "faults")
    report.print(out)
    printed = out.getvalue()

    assert report.failures() == [], printed
    v = report.verdict
    assert v.acknowledged >= plan.events
    assert not v.lost and v.duplicated_effects == 0, printed
    assert report.killed_kinds == {kind.name for kind in KINDS}, printed
    assert any(cause.startswith("forced ") for cause in report.crashes), printed
    assert report.unavailable_while_broker_away > 0 and report.accepted_while_broker_away == 0, printed
    # Every expired contact was shredded, and each certificate announced to the auditors exactly once.
    assert v.certificates > 0 and v.deletion_events == v.certificates, printed
    assert "RESULT: PASS" in printed
