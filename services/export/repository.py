"""Queries of export's own tables (schema ``export``): loans, their items, attestations, notices, the contact
flags kept from DSR decisions and the disclosure register. No rule is decided here; service functions call
these with their session and decide.

An institute sees only its own loans: :func:`own_loans` filters on its institute id, and once
`shared.security.access.apply_record_rules` has run, the transaction is under the sailo_institute database role
(row-level security) as well.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    column,
    delete,
    exists,
    func,
    literal_column,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.export.models import Attestation, ContactFlag, Disclosure, Loan, LoanItem, Notice
from services.export.notices import Decision
from shared.platform.db import bulk_insert
from shared.recordstore.lending import lendable_recordings
from shared.security.auth import Principal, Role

# --- loans ----------------------------------------------------------------------------------------------------


def own_loans(principal: Principal) -> Select[Loan]:
    query = select(Loan)
    if principal.role is Role.INSTITUTE:
        query = query.where(Loan.institute_id == (principal.institute_id or ""))
    return query


async def loan_of(
    session: AsyncSession, principal: Principal, loan_id: UUID, *, lock: bool = False
) -> Loan | None:
    """The loan `principal` may see, or None (missing, or another institute's)."""
    query = own_loans(principal).where(Loan.loan_id == loan_id)
    loan: Loan | None = await session.scalar(query.with_for_update() if lock else query)
    return loan


async def loans_of(session: AsyncSession, principal: Principal) -> list[Loan]:
    return list((await session.scalars(own_loans(principal).order_by(Loan.created_at))).all())


async def loans_by_id(session: AsyncSession, loan_ids: Collection[UUID]) -> dict[UUID, Loan]:
    return {
        loan.loan_id: loan for loan in await session.scalars(select(Loan).where(Loan.loan_id.in_(loan_ids)))
    }


async def loan_by_id(session: AsyncSession, loan_id: UUID) -> Loan | None:
    loan: Loan | None = await session.scalar(select(Loan).where(Loan.loan_id == loan_id))
    return loan


async def mark_key_released(session: AsyncSession, loan_id: UUID, now: datetime) -> None:
    """Record the first release of the loan's package key; a later one leaves it as it is."""
    await session.execute(
        update(Loan)
        .where(Loan.loan_id == loan_id, Loan.key_released_at.is_(None))
        .values(key_released_at=now)
    )


# --- items ----------------------------------------------------------------------------------------------------


async def selected_items(session: AsyncSession, loan_id: UUID) -> list[LoanItem]:
    """The loan's items still selected (not withdrawn, not yet lent), locked for the step that uses them."""
    return list(
        (
            await session.scalars(
                select(LoanItem)
                .where(LoanItem.loan_id == loan_id, LoanItem.status == "selected")
                .order_by(LoanItem.item_id)
                .with_for_update()
            )
        ).all()
    )


async def items_of(session: AsyncSession, loan_id: UUID) -> list[LoanItem]:
    return list(
        (
            await session.scalars(
                select(LoanItem).where(LoanItem.loan_id == loan_id).order_by(LoanItem.item_id)
            )
        ).all()
    )


async def items_to_attest(
    session: AsyncSession, loan_id: UUID, item_ids: Sequence[UUID] | None
) -> list[LoanItem]:
    """The loan's items (only `item_ids` if given), locked for the attestation."""
    query = select(LoanItem).where(LoanItem.loan_id == loan_id)
    if item_ids is not None:
        query = query.where(LoanItem.item_id.in_(item_ids))
    return list((await session.scalars(query.order_by(LoanItem.item_id).with_for_update())).all())


async def lent_items(session: AsyncSession, loan_id: UUID) -> list[LoanItem]:
    return list(
        (
            await session.scalars(
                select(LoanItem)
                .where(LoanItem.loan_id == loan_id, LoanItem.status == "lent")
                .order_by(LoanItem.item_id)
            )
        ).all()
    )


async def count_lent(session: AsyncSession, loan_id: UUID) -> int:
    """Items of the loan still out: neither returned nor destroyed."""
    return (
        await session.scalar(
            select(func.count()).where(LoanItem.loan_id == loan_id, LoanItem.status == "lent")
        )
    ) or 0


async def replace_items(session: AsyncSession, loan_id: UUID, rows: Sequence[dict[str, Any]]) -> None:
    """The loan's items become `rows` (each without its loan_id and item_id, which are filled in)."""
    await session.execute(delete(LoanItem).where(LoanItem.loan_id == loan_id))
    if rows:
        await bulk_insert(
            session, LoanItem, [{"item_id": uuid.uuid4(), "loan_id": loan_id, **row} for row in rows]
        )


# --- attestations ---------------------------------------------------------------------------------------------


async def attestations_of(session: AsyncSession, loan_id: UUID) -> list[Attestation]:
    return list(
        (
            await session.scalars(
                select(Attestation).where(Attestation.loan_id == loan_id).order_by(Attestation.attested_at)
            )
        ).all()
    )


# --- notices --------------------------------------------------------------------------------------------------


def own_notices(principal: Principal) -> Select[Notice]:
    query = select(Notice)
    if principal.role is Role.INSTITUTE:
        query = query.join(Loan, Loan.loan_id == Notice.loan_id).where(
            Loan.institute_id == (principal.institute_id or "")
        )
    return query


async def notices_page(
    session: AsyncSession,
    principal: Principal,
    *,
    loan_id: UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Notice]]:
    """How many notices match, and the page asked for, oldest first."""
    query = own_notices(principal)
    if loan_id is not None:
        query = query.where(Notice.loan_id == loan_id)
    if status == "open":
        query = query.where(Notice.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(Notice.acknowledged_at.is_not(None))
    elif status == "escalated":
        query = query.where(Notice.acknowledged_at.is_(None), Notice.escalated_at.is_not(None))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = list(
        (
            await session.scalars(
                query.order_by(Notice.issued_at, Notice.notice_id).limit(limit).offset(offset)
            )
        ).all()
    )
    return total, page


async def notice_of(session: AsyncSession, principal: Principal, notice_id: UUID) -> Notice | None:
    """The notice `principal` may see, locked for its acknowledgement, or None."""
    notice: Notice | None = await session.scalar(
        own_notices(principal).where(Notice.notice_id == notice_id).with_for_update(of=Notice)
    )
    return notice


async def unacknowledged_notices(session: AsyncSession, loan_id: UUID) -> list[Row[UUID, str]]:
    """(item_id, the item's status) of the loan's notices not yet acknowledged."""
    return list(
        (
            await session.execute(
                select(Notice.item_id, LoanItem.status)
                .join(LoanItem, LoanItem.item_id == Notice.item_id)
                .where(Notice.loan_id == loan_id, Notice.acknowledged_at.is_(None))
                .order_by(Notice.item_id)
            )
        ).all()
    )


def _affected(decision: Decision) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [LoanItem.contact_ref.in_(sorted(set(decision.contact_refs)))]
    if decision.artifact_class is not None:
        conditions.append(LoanItem.artifact_class == decision.artifact_class)
    return conditions


async def withdraw_selected(session: AsyncSession, decision: Decision) -> list[UUID]:
    """Withdraw the items `decision` concerns that are still only selected; their ids."""
    return list(
        (
            await session.scalars(
                update(LoanItem)
                .where(*_affected(decision), LoanItem.status == "selected")
                .values(status="withdrawn")
                .returning(LoanItem.item_id)
            )
        ).all()
    )


async def items_to_notify(session: AsyncSession, decision: Decision) -> list[Row[UUID, UUID]]:
    """(item_id, loan_id) of the items `decision` concerns still lent in a delivered, open loan."""
    query = (
        select(LoanItem.item_id, LoanItem.loan_id)
        .join(Loan, Loan.loan_id == LoanItem.loan_id)
        .where(
            *_affected(decision),
            LoanItem.status == "lent",
            Loan.delivered_at.is_not(None),
            Loan.closed_at.is_(None),
        )
        .order_by(LoanItem.loan_id, LoanItem.item_id)
    )
    if decision.kind == "destroy":
        # The erasure decision and retention's deletion that carries it out both call for destruction: the
        # institute is told once.
        query = query.where(
            ~exists().where(and_(Notice.item_id == LoanItem.item_id, Notice.kind == "destroy"))
        )
    return list((await session.execute(query)).all())


async def insert_notices(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> list[Notice]:
    """Insert notices, one per (source event, item) at most; the ones inserted now, by loan and item."""
    inserted = (
        await session.execute(
            insert(Notice)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=[Notice.source_event_id, Notice.item_id])
            .returning(Notice.notice_id)
        )
    ).scalars()
    notice_ids = list(inserted)
    if not notice_ids:
        return []
    return list(
        (
            await session.scalars(
                select(Notice)
                .where(Notice.notice_id.in_(notice_ids))
                .order_by(Notice.loan_id, Notice.item_id)
            )
        ).all()
    )


# --- selection ------------------------------------------------------------------------------------------------

# Retention's view of when each contact's recording is due for deletion (migration 0012): retention owns the
# schedule behind it, export only reads this.
_RECORDING_DUE_TIMES = table(
    "recording_due_times", column("contact_ref"), column("due_at"), schema="retention"
)


async def selection_candidates(
    session: AsyncSession,
    *,
    registers: Sequence[str],
    channels: Sequence[str],
    started_from: datetime | None,
    started_before: datetime | None,
    agent_ids: Sequence[str],
    contact_refs: Sequence[UUID],
) -> list[Row[UUID, str, bool, list[str], datetime | None]]:
    """One row per contact with a recording that could be lent under the criteria, in pseudonym order, with
    every fact an exclusion needs: ``contact_ref``, ``register``, ``restricted`` (the record store's), ``flags``
    (the DSR decisions export keeps, see services.export.handlers) and ``recording_due_at`` (the earliest
    scheduled deletion of the recording, from retention's view). One query for the whole set."""
    recordings = lendable_recordings(
        registers=registers,
        channels=channels,
        started_from=started_from,
        started_before=started_before,
        agent_ids=agent_ids,
        contact_refs=contact_refs,
    ).subquery("c")
    due = _RECORDING_DUE_TIMES
    query = (
        select(
            recordings.c.contact_ref,
            recordings.c.register,
            recordings.c.restricted,
            func.coalesce(
                func.array_agg(ContactFlag.flag.distinct()).filter(ContactFlag.flag.is_not(None)),
                literal_column("'{}'"),
            ).label("flags"),
            func.min(due.c.due_at).label("recording_due_at"),
        )
        .select_from(recordings)
        .outerjoin(
            ContactFlag,
            and_(ContactFlag.contact_ref == recordings.c.contact_ref, ContactFlag.cleared_at.is_(None)),
        )
        .outerjoin(due, due.c.contact_ref == recordings.c.contact_ref)
        .group_by(recordings.c.contact_ref, recordings.c.register, recordings.c.restricted)
        .order_by(recordings.c.contact_ref)
    )
    return list((await session.execute(query)).all())


# --- the loan watch -------------------------------------------------------------------------------------------


async def loans_to_remind(
    session: AsyncSession, *, today: date, reminder_days: int, limit: int
) -> list[Row[Loan, int]]:
    """Delivered, open loans with items still out that are due for a reminder (their due day within
    `reminder_days` of `today`) or overdue and not yet told so, each with how many items are out; locked, and
    those another instance has locked skipped."""
    outstanding = (
        select(func.count())
        .where(LoanItem.loan_id == Loan.loan_id, LoanItem.status == "lent")
        .scalar_subquery()
    )
    return list(
        (
            await session.execute(
                select(Loan, outstanding)
                .where(
                    Loan.delivered_at.is_not(None),
                    Loan.closed_at.is_(None),
                    Loan.due_on.is_not(None),
                    exists().where(LoanItem.loan_id == Loan.loan_id, LoanItem.status == "lent"),
                    (Loan.reminded_at.is_(None) & (Loan.due_on <= today + timedelta(days=reminder_days)))
                    | (Loan.overdue_at.is_(None) & (Loan.due_on < today)),
                )
                .order_by(Loan.due_on, Loan.loan_id)
                .limit(limit)
                .with_for_update(of=Loan, skip_locked=True)
            )
        ).all()
    )


async def notices_to_escalate(
    session: AsyncSession, *, cutoff: datetime, limit: int
) -> list[Row[Notice, Loan]]:
    """Notices of open loans issued by `cutoff` and still neither acknowledged nor escalated, with their loans;
    locked, and those another instance has locked skipped."""
    return list(
        (
            await session.execute(
                select(Notice, Loan)
                .join(Loan, Loan.loan_id == Notice.loan_id)
                .where(
                    Notice.acknowledged_at.is_(None),
                    Notice.escalated_at.is_(None),
                    Notice.issued_at <= cutoff,
                    Loan.closed_at.is_(None),
                    # An item the institute has since returned or destroyed needs no chasing.
                    exists().where(LoanItem.item_id == Notice.item_id, LoanItem.status == "lent"),
                )
                .order_by(Notice.issued_at, Notice.notice_id)
                .limit(limit)
                .with_for_update(of=Notice, skip_locked=True)
            )
        ).all()
    )


# --- contact flags --------------------------------------------------------------------------------------------


async def set_flags(
    session: AsyncSession, contact_refs: Collection[UUID], flag: str, case_number: str, now: datetime
) -> None:
    if not contact_refs:
        return
    statement = insert(ContactFlag).values(
        [
            {"contact_ref": ref, "flag": flag, "case_number": case_number, "set_at": now, "cleared_at": None}
            for ref in sorted(set(contact_refs))
        ]
    )
    # The same decision again (a case reopened) flags the contact anew.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ContactFlag.contact_ref, ContactFlag.flag, ContactFlag.case_number],
            set_={"set_at": statement.excluded.set_at, "cleared_at": None},
        )
    )


async def clear_flags(session: AsyncSession, case_number: str, flags: Collection[str], now: datetime) -> None:
    await session.execute(
        update(ContactFlag)
        .where(
            ContactFlag.case_number == case_number,
            ContactFlag.flag.in_(flags),
            ContactFlag.cleared_at.is_(None),
        )
        .values(cleared_at=now)
    )


# --- the disclosure register ----------------------------------------------------------------------------------


async def delivered_loans(
    session: AsyncSession, *, register: str | None, first: date | None, last: date | None
) -> list[Row[Loan, list[str], int, int]]:
    """Loans delivered (lent on a day in the range), each with its items' registers, items lent and items
    accounted for."""
    counts = (
        select(
            LoanItem.loan_id,
            func.array_agg(func.distinct(LoanItem.register)).label("registers"),
            func.count().filter(LoanItem.status.in_(("lent", "returned", "destroyed"))).label("lent_items"),
            func.count().filter(LoanItem.status.in_(("returned", "destroyed"))).label("accounted"),
        )
        .group_by(LoanItem.loan_id)
        .subquery()
    )
    loans = select(Loan, counts.c.registers, counts.c.lent_items, counts.c.accounted).join(
        counts, counts.c.loan_id == Loan.loan_id
    )
    loans = loans.where(Loan.lent_on.is_not(None))
    if register is not None:
        loans = loans.where(func.array_position(counts.c.registers, register).is_not(None))
    if first is not None:
        loans = loans.where(Loan.lent_on >= first)
    if last is not None:
        loans = loans.where(Loan.lent_on <= last)
    return list((await session.execute(loans)).all())


async def disclosures(
    session: AsyncSession, *, register: str | None, first: date | None, last: date | None
) -> list[Disclosure]:
    others = select(Disclosure)
    if register is not None:
        others = others.where(Disclosure.register == register)
    if first is not None:
        others = others.where(Disclosure.disclosed_on >= first)
    if last is not None:
        others = others.where(Disclosure.disclosed_on <= last)
    return list((await session.scalars(others)).all())
