"""A loan's status machine, in one place: which step may run in which status, and where it moves the loan.

    draft --approve--> approved --deliver--> delivered --close--> closed
      \\                  \\--select, package (as often as needed)
       \\------------------\\---------close (nothing was ever delivered)--> closed

Nothing is chosen, packed or handed over on one person's word: a loan is approved by a second research officer
before any of that. Attestations come in while the loan is delivered; it closes once every item is accounted
for (the count is the loans service's business, not the status's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from services.export.models import Loan
from shared.platform.errors import ApiError

DRAFT: Final = "draft"
APPROVED: Final = "approved"
DELIVERED: Final = "delivered"
CLOSED: Final = "closed"


def _before_delivery(step: str) -> Callable[[str], str]:
    def refusal(status: str) -> str:
        if status == DRAFT:
            # Four eyes first: nothing is chosen, packed or handed over on one person's word.
            return f"the loan must be approved before its {step}"
        return f"a loan that is {status} cannot change its {step}"

    return refusal


@dataclass(frozen=True)
class Step:
    allowed_from: frozenset[str]
    moves_to: str | None
    """The status the step leaves the loan in; None for a step that keeps it."""
    refusal: Callable[[str], str]
    """Why the step is refused in a status it is not allowed from (the answer's reason)."""


APPROVE: Final = Step(
    frozenset({DRAFT}), APPROVED, lambda status: f"a loan that is {status} cannot be approved"
)
SELECT: Final = Step(frozenset({APPROVED}), None, _before_delivery("selection"))
PACKAGE: Final = Step(
    frozenset({APPROVED}), None, lambda status: f"a loan that is {status} cannot be packaged"
)
DELIVER: Final = Step(frozenset({APPROVED}), DELIVERED, _before_delivery("delivery"))
ATTEST: Final = Step(
    frozenset({DELIVERED}), None, lambda status: f"a loan that is {status} takes no attestations"
)
CLOSE: Final = Step(
    frozenset({DRAFT, APPROVED, DELIVERED}), CLOSED, lambda _status: "the loan is already closed"
)


def check(step: Step, loan: Loan) -> None:
    """Refuse (409, field `status`) a step the loan's status does not allow."""
    if loan.status not in step.allowed_from:
        raise ApiError.field(409, "status", step.refusal(loan.status))


def move(step: Step, loan: Loan) -> str:
    """Move the loan on by `step` (already checked); the status it had."""
    assert step.moves_to is not None and loan.status in step.allowed_from
    previous = loan.status
    loan.status = step.moves_to
    return previous
