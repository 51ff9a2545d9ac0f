"""Queries of retention's own tables (schema ``retention``): holds, contact facts, the schedule, certificates and
the blob-deletion queue. The sweeper's batch statements are here too, composed where they must touch the
record store in the same statement with the pieces shared.recordstore.expiry offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.retention.models import BlobDeletion, Certificate, ContactFacts, Hold, ScheduleItem
from shared.contracts.domain_events import RETENTION_EVENTS_TOPIC
from shared.messaging.outbox import envelope_sql, insert_events_sql
from shared.platform.clock import HELSINKI
from shared.recordstore import expiry

# -- holds ---------------------------------------------------------------------------------------------------


async def holds_newest_first(session: AsyncSession, *, limit: int = 1000) -> list[Hold]:
    return list((await session.scalars(select(Hold).order_by(Hold.hold_number.desc()).limit(limit))).all())


async def hold_for_update(session: AsyncSession, hold_number: int) -> Hold | None:
    return await session.get(Hold, hold_number, with_for_update=True)


async def unlifted_holds_on(
    session: AsyncSession,
    *,
    contact_ref: UUID,
    register: str | None,
    case_ref: str | None,
    subject_digests: Sequence[str],
) -> list[Hold]:
    """Holds not lifted that name the contact, its register, its case or one of its subjects, by number."""
    conditions = [(Hold.scope == "contact") & (Hold.target == str(contact_ref))]
    if register is not None:
        conditions.append((Hold.scope == "register") & (Hold.target == register))
    if case_ref:
        conditions.append((Hold.scope == "case") & (Hold.target == case_ref))
    if subject_digests:
        conditions.append((Hold.scope == "subject") & Hold.target.in_(subject_digests))
    return list(
        (
            await session.scalars(
                select(Hold).where(Hold.lifted_at.is_(None), or_(*conditions)).order_by(Hold.hold_number)
            )
        ).all()
    )


async def unlifted_holds_with_reason(session: AsyncSession, reason: str) -> list[Hold]:
    return list(
        (await session.scalars(select(Hold).where(Hold.reason == reason, Hold.lifted_at.is_(None)))).all()
    )


def active_holds_over(item: type[ScheduleItem], now: datetime) -> Select[int]:
    """The active holds that cover a schedule item (correlated on `item`): on its contact, its register, its
    case, or a subject the blind index links to the contact. A hold with an end date covers that whole day in
    Helsinki."""
    today = now.astimezone(HELSINKI).date()
    # Explicit correlation: nested two levels down, SQLAlchemy would otherwise add the schedule table to these
    # subqueries' own FROM, and a hold on any contact's subject would hold every item.
    case_of_contact = (
        select(ContactFacts.case_ref)
        .where(ContactFacts.contact_ref == item.contact_ref)
        .correlate(item)
        .scalar_subquery()
    )
    subject_of_contact = expiry.subject_links(item.contact_ref, Hold.target).correlate(item, Hold).exists()
    return select(Hold.hold_number).where(
        Hold.lifted_at.is_(None),
        or_(Hold.ends_on.is_(None), Hold.ends_on >= today),
        or_(
            and_(Hold.scope == "contact", Hold.target == cast(item.contact_ref, String)),
            and_(Hold.scope == "register", Hold.target == item.register),
            and_(Hold.scope == "case", Hold.target == case_of_contact),
            and_(Hold.scope == "subject", subject_of_contact),
        ),
    )


# -- contact facts -------------------------------------------------------------------------------------------


async def facts_of(session: AsyncSession, contact_refs: Sequence[UUID]) -> list[ContactFacts]:
    return list(
        (await session.scalars(select(ContactFacts).where(ContactFacts.contact_ref.in_(contact_refs)))).all()
    )


async def facts_for_update(session: AsyncSession, contact_refs: Sequence[UUID]) -> dict[UUID, ContactFacts]:
    rows = await session.scalars(
        select(ContactFacts).where(ContactFacts.contact_ref.in_(contact_refs)).with_for_update()
    )
    return {row.contact_ref: row for row in rows.all()}


async def upsert_facts(session: AsyncSession, contact_ref: UUID, facts: Mapping[str, Any]) -> None:
    await session.execute(
        insert(ContactFacts)
        .values(contact_ref=contact_ref, **facts)
        .on_conflict_do_update(index_elements=[ContactFacts.contact_ref], set_=dict(facts))
    )


async def registers_of(session: AsyncSession, contact_refs: Sequence[UUID]) -> dict[UUID, str]:
    rows = await session.execute(
        select(ContactFacts.contact_ref, ContactFacts.register).where(
            ContactFacts.contact_ref.in_(contact_refs)
        )
    )
    return {ref: register for ref, register in rows.all()}


async def facts_page(session: AsyncSession, *, after: UUID | None, limit: int) -> list[ContactFacts]:
    query = select(ContactFacts).order_by(ContactFacts.contact_ref).limit(limit)
    if after is not None:
        query = query.where(ContactFacts.contact_ref > after)
    return list((await session.scalars(query)).all())


# -- the schedule --------------------------------------------------------------------------------------------


async def items_of_contact(session: AsyncSession, contact_ref: UUID) -> list[ScheduleItem]:
    """A contact's schedule items: by due time (those with no clock yet last), class and item."""
    return list(
        (
            await session.scalars(
                select(ScheduleItem)
                .where(ScheduleItem.contact_ref == contact_ref)
                .order_by(ScheduleItem.due_at.nulls_last(), ScheduleItem.artifact_class, ScheduleItem.item)
            )
        ).all()
    )


async def scheduled_items(session: AsyncSession, contact_ref: UUID) -> list[ScheduleItem]:
    return list(
        (
            await session.scalars(
                select(ScheduleItem).where(
                    ScheduleItem.contact_ref == contact_ref, ScheduleItem.state == "scheduled"
                )
            )
        ).all()
    )


async def done_items(session: AsyncSession, contact_ref: UUID) -> set[tuple[str, str]]:
    """(artifact_class, item) of the contact's items already deleted or redacted."""
    rows = await session.execute(
        select(ScheduleItem.artifact_class, ScheduleItem.item).where(
            ScheduleItem.contact_ref == contact_ref, ScheduleItem.state == "done"
        )
    )
    return {(artifact_class, item) for artifact_class, item in rows.all()}


async def item_state(session: AsyncSession, contact_ref: UUID, artifact_class: str, item: str) -> str | None:
    return await session.scalar(
        select(ScheduleItem.state).where(
            ScheduleItem.contact_ref == contact_ref,
            ScheduleItem.artifact_class == artifact_class,
            ScheduleItem.item == item,
        )
    )


async def delete_done_class_items(session: AsyncSession, contact_ref: UUID, classes: Iterable[str]) -> None:
    """Forget that these classes of the contact were deleted as a whole (their class-level done rows)."""
    await session.execute(
        delete(ScheduleItem).where(
            ScheduleItem.contact_ref == contact_ref,
            ScheduleItem.state == "done",
            ScheduleItem.item == "",
            ScheduleItem.artifact_class.in_(sorted(classes)),
        )
    )


async def delete_scheduled(session: AsyncSession, contact_ref: UUID) -> None:
    await session.execute(
        delete(ScheduleItem).where(ScheduleItem.contact_ref == contact_ref, ScheduleItem.state == "scheduled")
    )


async def insert_items(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ScheduleItem), list(rows))


async def make_due_now(
    session: AsyncSession, contact_refs: Sequence[UUID], *, now: datetime, trigger: str, reason: str
) -> None:
    """Every scheduled item of the contacts falls due at `now`, on `trigger`, for `reason`."""
    await session.execute(
        update(ScheduleItem)
        .where(ScheduleItem.contact_ref.in_(contact_refs), ScheduleItem.state == "scheduled")
        .values(due_at=now, trigger=trigger, trigger_at=now, reason=reason)
    )


# Which of these (contact, class) pairs were crypto-shredded as a whole and yet have a data key again.
_SHREDDED_THEN_KEYED_AGAIN = text(
    "SELECT s.contact_ref, s.artifact_class FROM retention.schedule AS s"  # noqa: S608
    " JOIN unnest(CAST(:refs AS uuid[]), CAST(:classes AS varchar[])) AS wanted(contact_ref, artifact_class)"
    " USING (contact_ref, artifact_class)"
    " WHERE s.item = '' AND s.state = 'done' AND s.action = 'delete' AND " + expiry.has_data_key("s")
)


async def shredded_then_keyed_again(
    session: AsyncSession, pairs: Sequence[tuple[UUID, str]]
) -> set[tuple[UUID, str]]:
    """Those of `pairs` deleted as a whole class that the record store holds a data key for again."""
    result = await session.execute(_SHREDDED_THEN_KEYED_AGAIN, expiry.pair_arrays(pairs))
    return {(UUID(str(ref)), artifact_class) for ref, artifact_class in result}


def forecast_query(start: datetime, end: datetime, register: str | None) -> Select[tuple[Any, str, int]]:
    local_day = func.date(func.timezone("Europe/Helsinki", ScheduleItem.due_at))
    query = (
        select(local_day, ScheduleItem.artifact_class, func.count())
        .where(ScheduleItem.state == "scheduled", ScheduleItem.due_at >= start, ScheduleItem.due_at < end)
        .group_by(local_day, ScheduleItem.artifact_class)
        .order_by(local_day, ScheduleItem.artifact_class)
    )
    if register:
        query = query.where(ScheduleItem.register == register)
    return query


async def scheduled_per_day(
    session: AsyncSession, start: datetime, end: datetime, register: str | None
) -> list[tuple[Any, str, int]]:
    """(Helsinki day, class, items) of the scheduled items due in [start, end)."""
    return [
        (day, cls, count)
        for day, cls, count in (await session.execute(forecast_query(start, end, register))).all()
    ]


# -- certificates --------------------------------------------------------------------------------------------


async def certificates(
    session: AsyncSession,
    *,
    register: str | None,
    done_from: datetime | None,
    done_before: datetime | None,
    limit: int,
) -> list[Certificate]:
    query = select(Certificate).order_by(Certificate.done_at, Certificate.certificate_id).limit(limit)
    if register:
        query = query.where(Certificate.register == register)
    conditions: list[ColumnElement[bool]] = []
    if done_from is not None:
        conditions.append(Certificate.done_at >= done_from)
    if done_before is not None:
        conditions.append(Certificate.done_at < done_before)
    if conditions:
        query = query.where(*conditions)
    return list((await session.scalars(query)).all())


# -- the sweeper's batch -------------------------------------------------------------------------------------


class Claimed(NamedTuple):
    """A schedule item the batch has locked."""

    contact_ref: UUID
    artifact_class: str
    item: str
    register: str
    policy_version: str
    action: str
    trigger: str
    trigger_at: datetime | None
    due_at: datetime | None


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Claimed]:
    """Up to `limit` items due by `now` that no active hold covers, in due order, locked for this transaction;
    items another batch holds are skipped, so any number of sweepers share the work."""
    # Plain rows, not ORM objects: the batch is read once and changed set-based.
    return [
        Claimed(*row)
        for row in await session.execute(
            select(*(getattr(ScheduleItem, name) for name in Claimed._fields))
            .where(
                ScheduleItem.state == "scheduled",
                ScheduleItem.due_at.is_not(None),
                ScheduleItem.due_at <= now,
                ~exists(active_holds_over(ScheduleItem, now)),
            )
            .order_by(ScheduleItem.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=ScheduleItem)
        )
    ]


# The whole crypto-shredding of a batch in one statement, so the database, not round trips, sets its pace: the
# record store's shredding (keys first, then rows) and the queueing of the removed artifacts' blobs, whose
# keys are gone from this statement on.
_SHRED = text(
    f"WITH pairs AS (SELECT * FROM {expiry.PAIRS_FROM_ARRAYS}), {expiry.shred_ctes('pairs')},"  # noqa: S608
    " queued AS (INSERT INTO retention.blob_deletions (blob_key)"
    " SELECT blob_key FROM shredded_artifacts WHERE blob_key IS NOT NULL)"
    " SELECT contact_ref, artifact_class, pieces, ciphertext_sha256 FROM shredded"
)


async def shred(
    session: AsyncSession, pairs: Sequence[tuple[UUID, str]]
) -> dict[tuple[UUID, str], tuple[int, str]]:
    """Crypto-shred `pairs` (their data keys locked first) and queue their blobs: per pair, the pieces removed
    and the hex SHA-256 of the destroyed ciphertext."""
    await expiry.lock_keys(session, pairs)
    return {
        (ref, artifact_class): (int(pieces), str(digest))
        for ref, artifact_class, pieces, digest in await session.execute(_SHRED, expiry.pair_arrays(pairs))
    }


# Certificate ids are version-7 UUIDs (shared.platform.ids: time-ordered, so inserts append to the index);
# done_at is the batch's time.
CERTIFICATE_COLUMNS = {
    "contact_ref": "uuid",
    "register": "varchar",
    "artifact_class": "varchar",
    "item": "varchar",
    "policy_version": "varchar",
    "rule": "varchar",
    "trigger": "varchar",
    "trigger_at": "timestamptz",
    "due_at": "timestamptz",
    "ciphertext_sha256": "varchar",
    "items": "integer",
    "method": "varchar",
}
_INSERT_CERTIFICATES = text(
    f"INSERT INTO retention.certificates (certificate_id, {', '.join(CERTIFICATE_COLUMNS)}, done_at)"  # noqa: S608
    " SELECT *, CAST(:done_at AS timestamptz) FROM unnest(CAST(:certificate_id AS uuid[]), "
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in CERTIFICATE_COLUMNS.items())
    + ")"
)
_ITEMS = (
    "unnest(CAST(:contact_ref AS uuid[]), CAST(:artifact_class AS varchar[]), CAST(:item AS varchar[]))"
    " AS d(contact_ref, artifact_class, item)"
)
_MARK_DONE = text(
    f"UPDATE retention.schedule AS t SET state = 'done' FROM {_ITEMS}"  # noqa: S608
    " WHERE t.contact_ref = d.contact_ref AND t.artifact_class = d.artifact_class AND t.item = d.item"
)
ARTIFACT_DELETED_DATA: Final = {
    "contact_ref": "c.contact_ref",
    "register": "c.register",
    "artifact_class": "c.artifact_class",
    "item": "c.item",
    "method": "c.method",
    "reason": "c.reason",
    "certificate_id": "c.certificate_id",
    "policy_version": "c.policy_version",
    "due_at": "c.due_at",
    "done_at": "CAST(:done_at AS timestamptz)",
}
"""Each field of ArtifactDeletedData as the SQL of _ANNOUNCE computes it from its rows `c`."""
# The artifact-deleted events in one statement, built from the contract (shared.messaging.outbox.envelope_sql
# refuses a mapping that misses a field of ArtifactDeletedData or names one it lacks); they commit with the
# deletions they announce.
_ANNOUNCE = text(
    insert_events_sql(
        topic="CAST(:topic AS varchar)",
        key="CAST(c.contact_ref AS varchar)",
        event=envelope_sql(
            "retention.artifact_deleted",
            ARTIFACT_DELETED_DATA,
            producer="retention",
            occurred_at="CAST(:done_at AS timestamptz)",
        ),
        rows="unnest(CAST(:certificate_id AS uuid[]), CAST(:contact_ref AS uuid[]), CAST(:register AS varchar[]),"
        " CAST(:artifact_class AS varchar[]), CAST(:item AS varchar[]), CAST(:method AS varchar[]),"
        " CAST(:policy_version AS varchar[]), CAST(:due_at AS timestamptz[]), CAST(:reason AS varchar[]))"
        " AS c(certificate_id, contact_ref, register, artifact_class, item, method, policy_version, due_at,"
        " reason)",
    )
)


async def certify(
    session: AsyncSession,
    *,
    columns: Mapping[str, Sequence[Any]],
    certificate_ids: Sequence[UUID],
    reasons: Sequence[str],
    done_at: datetime,
) -> None:
    """A certificate per item (`columns`: CERTIFICATE_COLUMNS, one list each), the items marked done, and an
    artifact-deleted event per item (`reasons`: why each went) on the retention events topic."""
    await session.execute(
        _INSERT_CERTIFICATES, {"done_at": done_at, "certificate_id": list(certificate_ids), **columns}
    )
    await session.execute(_MARK_DONE, dict(columns))
    await session.execute(
        _ANNOUNCE,
        {
            "topic": RETENTION_EVENTS_TOPIC,
            "reason": list(reasons),
            "done_at": done_at,
            "certificate_id": list(certificate_ids),
            **{
                name: columns[name]
                for name in ("contact_ref", "register", "artifact_class", "item", "method", "policy_version")
            },
            "due_at": columns["due_at"],
        },
    )


_LOCK_CONTACTS = text(
    "SELECT contact_ref FROM retention.contact_facts WHERE contact_ref = ANY(CAST(:refs AS uuid[]))"
    " ORDER BY contact_ref FOR UPDATE"
)
# Contacts left with nothing scheduled lose their remaining rows (the contact, any keys left, the facts) in
# one statement. It must run after _LOCK_CONTACTS as a statement of its own: its snapshot then includes what a
# concurrent batch committed while this one waited for the lock.
_REMOVE_EMPTIED = text(
    "WITH emptied AS (SELECT c.contact_ref FROM unnest(CAST(:refs AS uuid[])) AS c(contact_ref) WHERE NOT EXISTS"  # noqa: S608
    " (SELECT FROM retention.schedule AS s WHERE s.contact_ref = c.contact_ref AND s.state = 'scheduled')),"
    f" {expiry.remove_contacts_ctes('emptied')}"
    " DELETE FROM retention.contact_facts AS t USING emptied AS e WHERE t.contact_ref = e.contact_ref"
)


async def remove_contacts_if_nothing_left(session: AsyncSession, contact_refs: Iterable[UUID]) -> None:
    """When nothing of a contact is scheduled any more, its remaining rows go: the record store's and its facts."""
    # Two sweepers finishing the last two classes of one contact at once would each still see the other's
    # item as pending and leave the contact behind for good. Locking the contact (in one order, so two
    # batches cannot deadlock) makes the second wait, and its check then sees the first one's commit.
    refs = sorted(contact_refs)
    await session.execute(_LOCK_CONTACTS, {"refs": refs})
    await session.execute(_REMOVE_EMPTIED, {"refs": refs})


async def queued_blobs(session: AsyncSession, *, limit: int = 100) -> list[BlobDeletion]:
    """The oldest queued blob deletions no other sweeper holds, locked for this transaction."""
    return list(
        (
            await session.scalars(
                select(BlobDeletion).order_by(BlobDeletion.id).limit(limit).with_for_update(skip_locked=True)
            )
        ).all()
    )


async def backlog(session: AsyncSession, now: datetime) -> int:
    """How many items are due and not yet done (a metric, and what an operator watches)."""
    value = await session.scalar(
        text("SELECT count(*) FROM retention.schedule WHERE state = 'scheduled' AND due_at <= :now"),
        {"now": now},
    )
    return int(value or 0)
