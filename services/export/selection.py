"""Choosing the recordings of a loan: the research officer's criteria, the default exclusions, and overrides.

A candidate is a contact of a register whose privacy notice allows temporary loans to a research institute,
with a stored call recording, matching the criteria. Before anything is sampled, a candidate is excluded by
default, with the first reason that applies:

- ``restricted``: processing is restricted (GDPR Art. 18): stored, but not to be used;
- ``dsr_hold``: held for a data subject's legal claims or while an objection is weighed (Art. 18(1)(c), (d));
- ``erasure``: the data subject's data are being erased (Art. 17);
- ``objection``: the data subject objected (Art. 21) and the objection was upheld;
- ``retention_ends_before_study_end``: the recording's own retention ends before the study does, so the
  institute would have to destroy it early.

The first three are never lent: Art. 18(2) and 17 leave no room for research. An objection (Art. 21(6): research
in the public interest) and an early retention end may be overridden for a named contact, with a justification;
the item records who overrode what and why. Every exclusion is counted by reason, and only counts are kept.

The sample is reproducible: the eligible contacts are ordered by their pseudonym and sampled with the seed, which
is recorded (drawn when the officer gives none).
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.export import repository
from shared.contracts.vocabulary import ArtifactClass
from shared.platform.clock import HELSINKI
from shared.policy.model import RecipientKind
from shared.policy.registry import PolicyRegistry

RECORDING: Final = ArtifactClass.RECORDING.value

# In the order they are tested: a contact is counted once, under the first that applies.
EXCLUSIONS: Final = ("restricted", "dsr_hold", "erasure", "objection", "retention_ends_before_study_end")
OVERRIDABLE: Final = frozenset({"objection", "retention_ends_before_study_end"})
NOT_ELIGIBLE: Final = "not_eligible"
"""An explicitly named contact that is no candidate: another register, no stored recording, outside the criteria."""


def lending_registers(policies: PolicyRegistry) -> list[str]:
    """Registers whose current privacy notice names a research institute as a temporary-loan recipient."""
    return sorted(
        register
        for register in policies.registers()
        if any(
            recipient.kind is RecipientKind.RESEARCH_INSTITUTE and recipient.temporary_loan
            for recipient in policies.latest(register).recipients
        )
    )


@dataclass(frozen=True, kw_only=True)
class Criteria:
    registers: list[str]
    channels: list[str] = field(default_factory=list)
    started_from: date | None = None
    started_to: date | None = None
    agent_ids: list[str] = field(default_factory=list)
    contact_refs: list[UUID] = field(default_factory=list)
    sample_size: int | None = None
    seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class Override:
    contact_ref: UUID
    justification: str


@dataclass(frozen=True, kw_only=True)
class Chosen:
    contact_ref: UUID
    register: str
    overridden_exclusion: str | None = None
    override_justification: str | None = None


@dataclass(frozen=True, kw_only=True)
class Selection:
    chosen: list[Chosen]
    candidates: int
    excluded: dict[str, int]
    """Reason -> contacts kept out (after overrides)."""
    overridden: dict[str, int]
    seed: int | None
    refused_overrides: dict[UUID, str]
    """Overrides that are not allowed: contact -> its exclusion (restricted, dsr_hold, erasure)."""

    def summary(self, criteria: Criteria) -> dict[str, Any]:
        """What the loan keeps of this selection: criteria, seed and counts; no contact is named."""
        return {
            "criteria": {
                "registers": criteria.registers,
                "channels": criteria.channels,
                "started_from": criteria.started_from.isoformat() if criteria.started_from else None,
                "started_to": criteria.started_to.isoformat() if criteria.started_to else None,
                "agent_ids": len(criteria.agent_ids),
                "contact_refs": len(criteria.contact_refs),
                "sample_size": criteria.sample_size,
            },
            "seed": self.seed,
            "candidates": self.candidates,
            "selected": len(self.chosen),
            "excluded": self.excluded,
            "overridden": self.overridden,
        }


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), tzinfo=HELSINKI)


def exclusion_of(row: Any, study_ends_at: datetime) -> str | None:
    """The first default exclusion that applies to a candidate row, or None."""
    flags = set(row.flags)
    if row.restricted or "restricted" in flags:
        return "restricted"
    if "dsr_hold" in flags:
        return "dsr_hold"
    if "erasure" in flags:
        return "erasure"
    if "objection" in flags:
        return "objection"
    if row.recording_due_at is not None and row.recording_due_at < study_ends_at:
        return "retention_ends_before_study_end"
    return None


async def select_items(
    session: AsyncSession,
    criteria: Criteria,
    *,
    study_ends_on: date,
    overrides: list[Override],
) -> Selection:
    """The contacts a loan would lend under `criteria`, with every exclusion counted by reason."""
    rows = await repository.selection_candidates(
        session,
        registers=criteria.registers,
        channels=criteria.channels,
        started_from=_day_start(criteria.started_from),
        started_before=_day_start(criteria.started_to + timedelta(days=1)) if criteria.started_to else None,
        agent_ids=criteria.agent_ids,
        contact_refs=criteria.contact_refs,
    )
    # Items must be returned or destroyed by the end of the study's last day (Helsinki).
    study_ends_at = datetime.combine(study_ends_on + timedelta(days=1), time(), tzinfo=HELSINKI)
    overridden_by = {override.contact_ref: override for override in overrides}
    excluded: Counter[str] = Counter()
    overridden: Counter[str] = Counter()
    refused: dict[UUID, str] = {}
    eligible: list[Chosen] = []
    for row in rows:
        reason = exclusion_of(row, study_ends_at)
        override = overridden_by.get(row.contact_ref)
        if reason is None:
            eligible.append(Chosen(contact_ref=row.contact_ref, register=row.register))
        elif override is not None and reason in OVERRIDABLE:
            overridden[reason] += 1
            eligible.append(
                Chosen(
                    contact_ref=row.contact_ref,
                    register=row.register,
                    overridden_exclusion=reason,
                    override_justification=override.justification,
                )
            )
        else:
            if override is not None:
                refused[row.contact_ref] = reason
            excluded[reason] += 1
    found = {row.contact_ref for row in rows}
    if missing := [ref for ref in criteria.contact_refs if ref not in found]:
        excluded[NOT_ELIGIBLE] += len(set(missing))
    seed = criteria.seed
    chosen = eligible
    if criteria.sample_size is not None and criteria.sample_size < len(eligible):
        if seed is None:
            seed = secrets.randbelow(2**31)
        # Overridden contacts were named on purpose: they are always in, and the sample fills the rest.
        named = [item for item in eligible if item.overridden_exclusion is not None]
        pool = [item for item in eligible if item.overridden_exclusion is None]
        wanted = max(0, criteria.sample_size - len(named))
        chosen = named + random.Random(seed).sample(pool, min(wanted, len(pool)))
        chosen.sort(key=lambda item: item.contact_ref)
    return Selection(
        chosen=chosen,
        candidates=len(rows),
        excluded={reason: excluded[reason] for reason in (*EXCLUSIONS, NOT_ELIGIBLE) if excluded[reason]},
        overridden=dict(overridden),
        seed=seed,
        refused_overrides=refused,
    )
