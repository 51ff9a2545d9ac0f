"""What each register grants a data subject, read from its policy (the notice in force when the decision is
made), and how a caseworker's answer on a conditional right turns it into a decision with a legal ground.

- granted: the right is carried out.
- refused / not_applicable: refused, citing the policy's ground (DVV refuses erasure: public task and legal
  obligation, Art. 17(3)(b); portability is not applicable where the basis is a public task or a legal
  obligation, Art. 20(1)(a) and 20(3)).
- conditional: the caseworker says whether the condition holds (PRH restricts while accuracy is contested; HSY
  erases or upholds an objection "in some situations"); without that answer the request cannot be decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from shared.policy.model import LegalBasis, PolicyVersion, RightName, RightStatus
from shared.policy.registry import PolicyRegistry

Outcome = Literal["granted", "refused"]
# Art. 20(1)(a) covers consent and contract; Art. 20(3) excludes public tasks. Whatever a file says,
# portability is then not applicable.
_PORTABLE_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.CONTRACT})


class ConditionUnanswered(Exception):
    def __init__(self, register: str) -> None:
        super().__init__(register)
        self.register = register


@dataclass(frozen=True)
class RegisterRight:
    register: str
    version: PolicyVersion
    right: RightName
    status: RightStatus
    ground: str | None
    outcome: Outcome | None = None
    """Set by decide(): granted or refused."""
    statutory_ground: str | None = None
    """A refusal on a ground of the GDPR itself rather than the register's (services.dsr.letters.StatutoryGround),
    e.g. data_accurate when a rectification finds nothing to correct."""

    def decide(self, *, condition_met: bool | None) -> RegisterRight:
        if self.status is RightStatus.GRANTED:
            return replace(self, outcome="granted")
        if self.status is RightStatus.CONDITIONAL:
            if condition_met is None:
                raise ConditionUnanswered(self.register)
            return replace(self, outcome="granted" if condition_met else "refused")
        return replace(self, outcome="refused")

    def refuse_as_accurate(self) -> RegisterRight:
        """Art. 16 gives a right to have inaccurate data rectified: data checked and found accurate is a
        refusal on that statutory ground, whatever the register grants."""
        return replace(
            self,
            outcome="refused",
            statutory_ground="data_accurate",
            ground="GDPR Art. 16: the data were checked and are accurate",
        )

    def as_record(self) -> dict[str, str | None]:
        """What the request keeps of the decision: enough to show the legal ground to anyone who asks."""
        return {
            "register": self.register,
            "policy_version": self.version.version,
            "right": self.right.value,
            "status": self.status.value,
            "outcome": self.outcome,
            "ground": self.ground,
            "statutory_ground": self.statutory_ground,
        }


def right_of(version: PolicyVersion, right: RightName) -> tuple[RightStatus, str | None]:
    declared = version.rights.of(right)
    if right is RightName.PORTABILITY and not {g.ground for g in version.legal_basis} & _PORTABLE_BASES:
        ground = declared.ground or (
            "GDPR Art. 20(1)(a) covers processing based on consent or a contract only; "
            f"this register relies on {', '.join(g.article for g in version.legal_basis)}."
        )
        return RightStatus.NOT_APPLICABLE, ground
    return declared.status, declared.ground


def rights_for(
    policies: PolicyRegistry, registers: Sequence[str], right: RightName, at: datetime
) -> list[RegisterRight]:
    """The right in each register as the notice in force at `at` states it."""
    out = []
    for register in registers:
        version = policies.version_at(register, at) or policies.latest(register)
        status, ground = right_of(version, right)
        out.append(RegisterRight(register, version, right, status, ground))
    return out
