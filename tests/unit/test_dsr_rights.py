"""What each register grants a data subject, as its policy file says, and how a caseworker's answer on a
conditional right becomes the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.dsr.rights import ConditionUnanswered, rights_for
from services.dsr.service.lifecycle import CLOSED_STATUSES, OPEN_STATUSES, TRANSITIONS
from shared.policy.loader import load_policies
from shared.policy.model import RightName, RightStatus

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "policies")
AT = datetime(2026, 11, 1, tzinfo=UTC)


def _one(register: str, right: RightName):  # type: ignore[no-untyped-def]
    [decided] = rights_for(POLICIES, [register], right, AT)
    return decided


def test_dvv_refuses_erasure_and_portability_citing_the_ground() -> None:
    erasure = _one("dvv-personal-customer-service", RightName.ERASURE)
    assert erasure.status is RightStatus.REFUSED
    assert erasure.ground is not None and "17(3)(b)" in erasure.ground
    assert erasure.decide(condition_met=None).outcome == "refused"
    assert _one("dvv-personal-customer-service", RightName.PORTABILITY).decide(
        condition_met=None
    ).outcome == ("refused")


@pytest.mark.parametrize("register", sorted(POLICIES.registers()))
def test_portability_is_never_granted_where_the_basis_is_a_public_task_or_legal_obligation(
    register: str,
) -> None:
    decided = _one(register, RightName.PORTABILITY)
    assert decided.status in (RightStatus.NOT_APPLICABLE, RightStatus.REFUSED)
    assert decided.ground


def test_prh_grants_access_and_rectification_and_restricts_only_when_the_condition_holds() -> None:
    assert _one("prh-customer-service", RightName.ACCESS).decide(condition_met=None).outcome == "granted"
    assert _one("prh-customer-service", RightName.RECTIFICATION).status is RightStatus.GRANTED
    restriction = _one("prh-customer-service", RightName.RESTRICTION)
    assert restriction.status is RightStatus.CONDITIONAL
    with pytest.raises(ConditionUnanswered):
        restriction.decide(condition_met=None)
    assert restriction.decide(condition_met=True).outcome == "granted"
    assert restriction.decide(condition_met=False).outcome == "refused"


def test_hsy_allows_objection_and_erasure_in_some_situations() -> None:
    for right in (RightName.ERASURE, RightName.OBJECTION):
        decided = _one("hsy-customer-service", right)
        assert decided.status is RightStatus.CONDITIONAL
        record = decided.decide(condition_met=True).as_record()
        assert record["outcome"] == "granted" and record["register"] == "hsy-customer-service"


def test_every_status_is_open_or_closed_and_closed_ones_go_nowhere() -> None:
    statuses = set(TRANSITIONS) | {s for targets in TRANSITIONS.values() for s in targets}
    assert statuses == OPEN_STATUSES | CLOSED_STATUSES
    assert not CLOSED_STATUSES & set(TRANSITIONS)
    # Identity comes before the search: a received request cannot jump to in_progress.
    assert "in_progress" not in TRANSITIONS["received"]
