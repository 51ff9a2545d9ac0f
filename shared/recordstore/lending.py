"""Named reads of the record store for research loans and statistics (the export service): which contacts have a
call recording that can be lent, which contacts are restricted, and contacts counted per week.

Only clear columns are read (register, channel, direction, agent, times, the restriction and the recording's
state); nothing sealed is opened. The decisions stay with the caller: which criteria a loan has, which
exclusions apply, how a contact's direction becomes a statistics cell.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Select, String, Uuid, and_, any_, bindparam, case, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from shared.contracts.vocabulary import ArtifactClass
from shared.recordstore.models import Artifact, Contact

__all__ = ["ContactWeek", "contacts_by_week", "lendable_recordings", "restricted_contacts"]

_RECORDING = ArtifactClass.RECORDING.value


def _among(column: Any, name: str, values: Sequence[Any], of: TypeEngine[Any]) -> ColumnElement[bool]:
    # One array parameter however long the list (up to 10,000 contacts), not a parameter per value.
    among: ColumnElement[bool] = column == any_(bindparam(name, list(values), type_=ARRAY(of)))
    return among


def lendable_recordings(
    *,
    registers: Sequence[str],
    channels: Sequence[str] = (),
    started_from: datetime | None = None,
    started_before: datetime | None = None,
    agent_ids: Sequence[str] = (),
    contact_refs: Sequence[UUID] = (),
) -> Select[UUID, str, bool]:
    """A query (to compose, not run) of the contacts of `registers` with a stored, active call recording, each
    once: ``contact_ref``, ``register`` and ``restricted`` (processing restricted, GDPR Art. 18).

    Each other filter applies when given: the contact's channel among `channels`, its start in
    [`started_from`, `started_before`), its agent among `agent_ids`, the contact among `contact_refs`.
    """
    conditions: list[ColumnElement[bool]] = [_among(Contact.register, "registers", registers, String())]
    if channels:
        conditions.append(_among(Contact.channel, "channels", channels, String()))
    if started_from is not None:
        conditions.append(Contact.started_at >= started_from)
    if started_before is not None:
        conditions.append(Contact.started_at < started_before)
    if agent_ids:
        conditions.append(_among(Contact.agent_id, "agent_ids", agent_ids, String()))
    if contact_refs:
        conditions.append(_among(Contact.contact_ref, "contact_refs", contact_refs, Uuid()))
    # An artifact row per (contact, class): the join keeps one row per contact.
    return (
        select(
            Contact.contact_ref.label("contact_ref"),
            Contact.register.label("register"),
            Contact.restricted_at.is_not(None).label("restricted"),
        )
        .join(
            Artifact,
            and_(
                Artifact.contact_ref == Contact.contact_ref,
                Artifact.artifact_class == _RECORDING,
                Artifact.blob_key.is_not(None),
                Artifact.status == "active",
            ),
        )
        .where(*conditions)
    )


async def restricted_contacts(session: AsyncSession, contact_refs: Collection[UUID]) -> set[UUID]:
    """Those of `contact_refs` whose processing is restricted now (GDPR Art. 18)."""
    return set(
        (
            await session.scalars(
                select(Contact.contact_ref).where(
                    Contact.contact_ref.in_(contact_refs), Contact.restricted_at.is_not(None)
                )
            )
        ).all()
    )


@dataclass(frozen=True)
class ContactWeek:
    """Contacts of one register, ISO week, channel and kind of service, and their durations (whole seconds)."""

    register: str
    week: str
    channel: str
    service: str
    contacts: int
    ended: int
    """Contacts with a recorded end, which the durations cover."""
    duration_total_seconds: int | None
    duration_median_seconds: int | None


async def contacts_by_week(
    session: AsyncSession,
    *,
    registers: Iterable[str],
    start: datetime | None,
    end: datetime,
    timezone: str,
    directions: Sequence[str],
    services_by_channel: Sequence[tuple[Sequence[str], str]],
    otherwise: str,
) -> list[ContactWeek]:
    """Count the unrestricted contacts of `registers` that started in [`start`, `end`) (`start` None: from the
    first), per register, ISO week of the start on `timezone`'s calendar (``2026-W47``), channel and service.

    The service is the contact's direction where it is one of `directions`; else the service named for its
    channel in `services_by_channel` (the first that lists it); else `otherwise`. Durations are of the contacts
    with a recorded end: (end - start), at least 0, total and median rounded to whole seconds.
    """
    conditions = [
        Contact.register.in_(sorted(set(registers))),
        Contact.restricted_at.is_(None),
        Contact.started_at < end,
    ]
    if start is not None:
        conditions.append(Contact.started_at >= start)
    service = case(
        (Contact.direction.in_(list(directions)), Contact.direction),
        *[(Contact.channel.in_(list(channels)), literal(name)) for channels, name in services_by_channel],
        else_=literal(otherwise),
    )
    seconds = func.greatest(0, func.extract("epoch", Contact.ended_at - Contact.started_at))
    rows = (
        select(
            Contact.register.label("register"),
            func.to_char(func.timezone(timezone, Contact.started_at), 'IYYY-"W"IW').label("week"),
            Contact.channel.label("channel"),
            service.label("service"),
            Contact.ended_at.label("ended_at"),
            seconds.label("seconds"),
        )
        .where(and_(*conditions))
        .subquery()
    )
    keys = (rows.c.register, rows.c.week, rows.c.channel, rows.c.service)
    query = (
        select(
            *keys,
            func.count().label("contacts"),
            func.count(rows.c.ended_at).label("ended"),
            func.round(func.sum(rows.c.seconds)).label("total"),
            func.round(func.percentile_cont(0.5).within_group(rows.c.seconds)).label("median"),
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    return [
        ContactWeek(
            register=row.register,
            week=row.week,
            channel=row.channel,
            service=row.service,
            contacts=int(row.contacts),
            ended=int(row.ended),
            duration_total_seconds=None if row.total is None else int(row.total),
            duration_median_seconds=None if row.median is None else int(row.median),
        )
        for row in (await session.execute(query)).all()
    ]
