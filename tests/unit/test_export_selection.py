"""The default exclusions of a loan's selection, and which registers may lend at all, from the policy files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.export.selection import EXCLUSIONS, OVERRIDABLE, exclusion_of, lending_registers
from shared.policy.loader import load_policies

POLICIES = load_policies(Path(__file__).parents[2] / "policies")
STUDY_ENDS = datetime(2027, 4, 1, tzinfo=UTC)


def candidate(*flags: str, restricted: bool = False, due: datetime | None = None) -> SimpleNamespace:
    return SimpleNamespace(flags=list(flags), restricted=restricted, recording_due_at=due)


def test_only_registers_whose_notice_names_a_research_loan_may_lend() -> None:
    # PRH's customer-service notice alone announces temporary loans of recordings to a research institute.
    assert lending_registers(POLICIES) == ["prh-customer-service"]


def test_a_clean_recording_kept_past_the_study_is_eligible() -> None:
    assert exclusion_of(candidate(due=STUDY_ENDS + timedelta(days=1)), STUDY_ENDS) is None
    assert exclusion_of(candidate(due=None), STUDY_ENDS) is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (candidate(restricted=True), "restricted"),
        (candidate("restricted"), "restricted"),
        (candidate("dsr_hold"), "dsr_hold"),
        (candidate("erasure"), "erasure"),
        (candidate("objection"), "objection"),
        (candidate(due=STUDY_ENDS - timedelta(seconds=1)), "retention_ends_before_study_end"),
        # Counted once, under the first reason in the fixed order.
        (candidate("objection", "dsr_hold", due=STUDY_ENDS - timedelta(days=9)), "dsr_hold"),
    ],
)
def test_each_default_exclusion_is_named(row: SimpleNamespace, reason: str) -> None:
    assert exclusion_of(row, STUDY_ENDS) == reason


def test_restriction_and_erasure_can_never_be_overridden() -> None:
    assert set(EXCLUSIONS) - OVERRIDABLE == {"restricted", "dsr_hold", "erasure"}
