"""Notices to research institutes (GDPR Art. 19): the kinds of notice and the words telling the institute what
to do, what one event decides for some contacts' items, and what an event about a notice carries.

The consumers of the retention and DSR events are in services.export.handlers; the effects (flags, withdrawals,
notices) in services.export.service.notices. For each decision:

- the contact flags (restricted, dsr_hold, objection, erasure) are kept by case number, and a lifted
  restriction clears its case's flags, so selection can leave such contacts out;
- each affected item still ``lent`` in a delivered, open loan gets one notice for its institute (destroy,
  restrict, restriction_lifted, rectify), announced as ``export.notice_issued`` through the outbox, which the
  institute must acknowledge (the loan watch escalates the ones it does not);
- each affected item still only ``selected`` (not delivered) is ``withdrawn``, so it never leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from services.export.models import Loan, Notice

HOLDING_GROUNDS: Final = frozenset({"art18_1_c", "art18_1_d"})
"""Restriction grounds under which retention keeps the data for the data subject (legal claims, an objection
being weighed): flagged ``dsr_hold`` rather than ``restricted``."""
RESTRICTION_FLAGS: Final = ("restricted", "dsr_hold")

ACTIONS: Final[Mapping[str, str]] = {
    "destroy": (
        "Destroy this item and every copy of it, then acknowledge this notice and attest the destruction."
    ),
    "restrict": (
        "Stop processing this item: keep it stored but do not use it in the study until a notice lifts the"
        " restriction. Acknowledge this notice."
    ),
    "restriction_lifted": (
        "The restriction on this item is lifted: it may be used again as the agreement allows. Acknowledge"
        " this notice."
    ),
    "rectify": (
        "Details recorded about this item were corrected (the recording itself is unchanged): do not rely on"
        " earlier details of it you may hold. Acknowledge this notice."
    ),
}
"""What the institute must do for each kind of notice, in the words the API shows it."""


@dataclass(frozen=True)
class Decision:
    """What one event asks of export for some contacts' items."""

    kind: str
    """The notice kind for items already lent."""
    cause: str
    contact_refs: list[UUID]
    artifact_class: str | None = None
    """Only items of this class (a deleted artifact); None: every item of the contacts."""
    withdraw: bool = False
    """Whether items selected but not yet delivered must stay behind."""


def notice_data(notice: Notice, loan: Loan) -> dict[str, Any]:
    """The `NoticeData` of an event about `notice`: the item by the loan's own pseudonym, never the contact."""
    return {
        "notice_id": notice.notice_id,
        "loan_id": notice.loan_id,
        "institute_id": loan.institute_id,
        "item_id": notice.item_id,
        "kind": notice.kind,
        "cause": notice.cause,
    }
