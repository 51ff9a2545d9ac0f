"""Queries of the DSR service's own tables (schema ``dsr``): requests, their candidate contacts, access packages
and the disclosures kept from the export service's loan events. Flushes at most, never commits; which rows a
step needs and what it does with them is services.dsr.service's business.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr.models import Candidate, DataSubjectRequest, Disclosure, Package
from shared.platform.db import bulk_insert


async def next_case_number(session: AsyncSession) -> int:
    """The next number of the case-number sequence (never reused, even when the transaction rolls back)."""
    return int(await session.scalar(text("SELECT nextval('dsr.case_number_seq')")) or 0)


async def locked_request(session: AsyncSession, request_id: UUID) -> DataSubjectRequest | None:
    """The request, locked until the step's transaction ends, so two steps on one request take turns."""
    return await session.get(DataSubjectRequest, request_id, with_for_update=True)


async def requests_page(
    session: AsyncSession,
    *,
    status: str | None,
    request_type: str | None,
    due_before: date | None,
    due_after: date | None,
    statuses: Collection[str] | None,
    after: tuple[date, str] | None,
    limit: int,
) -> list[DataSubjectRequest]:
    """Requests by last day (then case number), after the position `after`, at most `limit`."""
    query = select(DataSubjectRequest)
    if status is not None:
        query = query.where(DataSubjectRequest.status == status)
    if request_type is not None:
        query = query.where(DataSubjectRequest.request_type == request_type)
    if due_before is not None:
        query = query.where(DataSubjectRequest.last_day <= due_before)
    if due_after is not None:
        query = query.where(DataSubjectRequest.last_day >= due_after)
    if statuses is not None:
        query = query.where(DataSubjectRequest.status.in_(sorted(statuses)))
    if after is not None:
        query = query.where(
            tuple_(DataSubjectRequest.last_day, DataSubjectRequest.case_number) > tuple_(*after)
        )
    query = query.order_by(DataSubjectRequest.last_day, DataSubjectRequest.case_number).limit(limit)
    return list((await session.scalars(query)).all())


async def latest_packages(session: AsyncSession, request_ids: list[UUID]) -> dict[UUID, Package]:
    """Each request's newest access package, for a whole page of requests in one query."""
    rows = await session.scalars(
        select(Package).where(Package.request_id.in_(request_ids)).order_by(Package.created_at)
    )
    return {package.request_id: package for package in rows}


async def latest_package(session: AsyncSession, request_id: UUID) -> Package | None:
    return await session.scalar(
        select(Package).where(Package.request_id == request_id).order_by(Package.created_at.desc()).limit(1)
    )


async def candidates_of(session: AsyncSession, request_id: UUID) -> list[Candidate]:
    """The contacts found for a request, the earliest first."""
    return list(
        (
            await session.scalars(
                select(Candidate).where(Candidate.request_id == request_id).order_by(Candidate.started_at)
            )
        ).all()
    )


async def candidate(session: AsyncSession, request_id: UUID, contact_ref: UUID) -> Candidate | None:
    return await session.get(Candidate, (request_id, contact_ref))


async def confirmed_candidates(session: AsyncSession, request_id: UUID) -> list[Candidate]:
    """The contacts a caseworker confirmed as the requester's, the earliest first."""
    return list(
        (
            await session.scalars(
                select(Candidate)
                .where(Candidate.request_id == request_id, Candidate.decision == "confirmed")
                .order_by(Candidate.started_at)
            )
        ).all()
    )


async def pending_candidates(session: AsyncSession, request_id: UUID) -> int:
    """How many found contacts are still neither confirmed nor rejected."""
    return (
        await session.scalar(
            select(func.count())
            .select_from(Candidate)
            .where(Candidate.request_id == request_id, Candidate.decision == "pending")
        )
    ) or 0


async def lifts_due(session: AsyncSession, today: date) -> list[DataSubjectRequest]:
    """Restrictions whose lift day has come and that are not lifted yet, locked; rows another instance holds
    are skipped (it is lifting them)."""
    return list(
        (
            await session.scalars(
                select(DataSubjectRequest)
                .where(
                    DataSubjectRequest.restriction_lifts_on <= today,
                    DataSubjectRequest.restriction_lifted_at.is_(None),
                )
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def open_requests_due_by(
    session: AsyncSession, statuses: Collection[str], last_day: date
) -> list[DataSubjectRequest]:
    """Requests in `statuses` whose last day is on or before `last_day` and that still lack a reminder or an
    overdue mark, locked, skipping those another instance holds."""
    return list(
        (
            await session.scalars(
                select(DataSubjectRequest)
                .where(
                    DataSubjectRequest.status.in_(sorted(statuses)),
                    DataSubjectRequest.last_day <= last_day,
                    (DataSubjectRequest.reminded_at.is_(None)) | (DataSubjectRequest.overdue_at.is_(None)),
                )
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def expired_packages(session: AsyncSession, now: datetime, *, limit: int = 100) -> list[Package]:
    """Packages past their download time and not destroyed yet, locked, skipping those another instance
    holds."""
    return list(
        (
            await session.scalars(
                select(Package)
                .where(Package.deleted_at.is_(None), Package.expires_at <= now)
                .with_for_update(skip_locked=True)
                .limit(limit)
            )
        ).all()
    )


async def disclosures_of(session: AsyncSession, contact_refs: Sequence[UUID]) -> list[Disclosure]:
    """The lent items that were any of these contacts', by the day they were lent."""
    return list(
        (
            await session.scalars(
                select(Disclosure)
                .where(Disclosure.contact_ref.in_(list(contact_refs)))
                .order_by(Disclosure.lent_on)
            )
        ).all()
    )


async def upsert_disclosures(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert lent items, or update the status and due day of those already kept."""
    await bulk_insert(
        session,
        Disclosure,
        rows,
        tail=(
            "ON CONFLICT (loan_id, contact_ref, artifact_class) DO UPDATE SET status = EXCLUDED.status,"
            " due_on = EXCLUDED.due_on, updated_at = EXCLUDED.updated_at"
        ),
    )
