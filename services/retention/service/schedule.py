"""The schedule: each contact's retention clocks and due times, from the contact events as they arrive.

The scheduler (services.retention.handlers) hands over the same sealed contact events as the record store gets,
of which only the clear metadata (type, register, time, class) is read: it never needs a data key. Each batch
folds the events into the contacts' facts and recomputes their schedule rows with services.retention.rules, in
the consumer loop's transaction, so an event redelivered after a crash changes nothing twice. A backfilled event
that is already past its due time gets a due time in the past and goes at the next sweep. `replan` recomputes
every pending item when the policy files change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.retention import repository
from services.retention.models import ContactFacts
from services.retention.rules import CaseStatusChange, Due, NoPolicyInForce, due_items
from services.retention.rules import ContactFacts as Facts
from shared.contracts.events import ENDING_EVENT_TYPES, SealedContactEvent
from shared.platform.crypto import BlindIndex
from shared.platform.logging import get_logger
from shared.policy.model import UnknownRegister
from shared.policy.registry import PolicyRegistry

log = get_logger(__name__)


CASE_STATUS_OF = {"case.opened": "open", "case.closed": "closed"}
RECORDING = "recording"
CHATBOT_IDENTIFIERS = "chatbot_identifiers"
FIELD_LEVEL_MESSAGES = frozenset({"chatbot.message"})
"""Events whose text a field-level rule (a message_sent trigger) redacts, message by message."""


def item_key(due: Due) -> str:
    """ "" for a class-level item; for a per-message item, the message's time (unique within a contact)."""
    if due.trigger.value == "message_sent" and due.trigger_at is not None:
        return due.trigger_at.strftime("%Y%m%dT%H%M%S.%fZ")
    return ""


def case_ref(blind_index: BlindIndex, register: str, case_number: str) -> str:
    """The pseudonym a case is known by in retention (holds on a case name it, never the case number)."""
    return str(blind_index.pseudonym("case", register, case_number))


def _fold(
    row: ContactFacts | None, events: list[SealedContactEvent], blind_index: BlindIndex
) -> dict[str, Any]:
    """The contact's facts with `events` folded in. Folding an event twice changes nothing (a resent event
    whose class was shredded meanwhile is folded again, see rearm_shredded)."""
    first = events[0]
    facts: dict[str, Any] = (
        {
            "register": row.register,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "last_event_at": row.last_event_at,
            "case_history": list(row.case_history),
            "message_times": list(row.message_times),
            "artifact_classes": list(row.artifact_classes),
            "case_ref": row.case_ref,
        }
        if row is not None
        else {
            "register": first.register,
            "started_at": first.occurred_at,
            "ended_at": None,
            "last_event_at": first.occurred_at,
            "case_history": [],
            "message_times": [],
            "artifact_classes": [],
            "case_ref": None,
        }
    )
    classes = set(facts["artifact_classes"])
    for event in events:
        at = event.occurred_at
        facts["started_at"] = min(facts["started_at"], at)
        facts["last_event_at"] = max(facts["last_event_at"], at)
        if event.type in ENDING_EVENT_TYPES:
            facts["ended_at"] = at if facts["ended_at"] is None else max(facts["ended_at"], at)
        if (
            event.type in CASE_STATUS_OF
            and (change := [CASE_STATUS_OF[event.type], at.isoformat()]) not in (facts["case_history"])
        ):
            facts["case_history"].append(change)
        if event.type in FIELD_LEVEL_MESSAGES:
            if at.isoformat() not in facts["message_times"]:  # a message's time is unique within a contact
                facts["message_times"].append(at.isoformat())
            classes.add(CHATBOT_IDENTIFIERS)
        classes.add(event.artifact_class.value)
        if case_number := event.attributes.get("case_number"):
            facts["case_ref"] = case_ref(blind_index, event.register, case_number)
        if event.channel.value == "phone":
            classes.add(RECORDING)  # a call's recording arrives over HTTP, not as an event
    facts["artifact_classes"] = sorted(classes)
    # Events may arrive out of order (a platform's backfill): the history is kept in time order.
    facts["case_history"].sort(key=lambda change: datetime.fromisoformat(change[1]))
    facts["message_times"].sort(key=datetime.fromisoformat)
    return facts


def _row_facts(row: ContactFacts) -> Facts:
    return _rules_facts(
        {
            "register": row.register,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "case_history": row.case_history,
            "message_times": row.message_times,
        }
    )


def _rules_facts(facts: dict[str, Any]) -> Facts:
    ended = facts["ended_at"]
    return Facts(
        register=facts["register"],
        started_at=facts["started_at"],
        ended_at=ended if ended is None or ended >= facts["started_at"] else None,
        case_history=tuple(
            CaseStatusChange(status, datetime.fromisoformat(at)) for status, at in facts["case_history"]
        ),
        message_times=tuple(datetime.fromisoformat(at) for at in facts["message_times"]),
    )


async def fold_and_schedule(
    session: AsyncSession,
    policies: PolicyRegistry,
    blind_index: BlindIndex,
    items: list[SealedContactEvent],
) -> None:
    """Fold `items` into their contacts' facts and schedule them again, re-arming the classes they carry."""
    by_contact: dict[UUID, list[SealedContactEvent]] = {}
    for item in items:
        by_contact.setdefault(item.contact_ref, []).append(item)
    rows = await repository.facts_for_update(session, list(by_contact))
    for contact_ref, events in by_contact.items():
        facts = _fold(rows.get(contact_ref), events, blind_index)
        await repository.upsert_facts(session, contact_ref, facts)
        await reschedule(
            session,
            policies,
            contact_ref,
            _rules_facts(facts),
            set(facts["artifact_classes"]),
            rearm={event.artifact_class.value for event in events},
        )


async def rearm_shredded(
    session: AsyncSession,
    policies: PolicyRegistry,
    blind_index: BlindIndex,
    items: list[SealedContactEvent],
) -> None:
    """Events seen before, arriving again: usually nothing to do. But when a class was crypto-shredded after
    the first copy and the event then came back (a platform resending what ingest had published but not yet
    answered for), ingest sealed it under a new data key and the record store keeps it. Such events are
    folded in again (folding is idempotent; a fully shredded contact has lost its facts) and their class
    re-armed: without this the new copy would have no due time and be kept for ever."""
    wanted = sorted({(item.contact_ref, item.artifact_class.value) for item in items})
    keyed_again = await repository.shredded_then_keyed_again(session, wanted)
    back = [item for item in items if (item.contact_ref, item.artifact_class.value) in keyed_again]
    if back:
        log.info("retention.shredded_class_rearmed", events=len(back))
        await fold_and_schedule(session, policies, blind_index, back)


async def reschedule(
    session: AsyncSession,
    policies: PolicyRegistry,
    contact_ref: UUID,
    facts: Facts,
    classes: set[str],
    rearm: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Replace the contact's pending schedule rows with what the rules say now for the classes it holds; done
    rows stay as they are, except the class-level ones of `rearm`: classes that have just received new events.
    Data arriving after its class was shredded is sealed under a new data key, so it needs a due time of its
    own; a done row left in place would keep it forever."""
    try:
        dues = due_items(policies, facts)
    except (NoPolicyInForce, UnknownRegister):
        # Ingest refuses such events; one that got through anyway is kept visible, never deleted by guess.
        log.warning("retention.no_policy_for_contact", register=facts.register)
        return
    done = await repository.done_items(session, contact_ref)
    if stale := {(cls, item) for cls, item in done if item == "" and cls in rearm}:
        await repository.delete_done_class_items(session, contact_ref, {cls for cls, _ in stale})
        done -= stale
    await repository.delete_scheduled(session, contact_ref)
    rows = [
        {
            "contact_ref": contact_ref,
            "artifact_class": due.artifact_class.value,
            "item": item_key(due),
            "register": due.register,
            "policy_version": due.policy_version,
            "action": due.action.value,
            "trigger": due.trigger.value,
            "trigger_at": due.trigger_at,
            "due_at": due.due_at,
            "reason": due.reason,
            "state": "scheduled",
        }
        for due in dues
        if due.artifact_class.value in classes and (due.artifact_class.value, item_key(due)) not in done
    ]
    await repository.insert_items(session, rows)


@dataclass(frozen=True)
class PlanChange:
    """One schedule item whose due time or rule would change under the policy files as they are now."""

    contact_ref: UUID
    register: str
    artifact_class: str
    item: str
    old_due: datetime | None
    new_due: datetime | None
    old_version: str | None
    new_version: str | None

    @property
    def kind(self) -> str:
        if self.old_version is None:
            return "added"
        if self.new_version is None:
            return "removed"
        if self.old_due is None or self.new_due is None:
            return "clock changed"
        return (
            "earlier" if self.new_due < self.old_due else "later" if self.new_due > self.old_due else "rule"
        )


async def replan(
    session: AsyncSession, policies: PolicyRegistry, *, apply: bool, batch: int = 1000
) -> list[PlanChange]:
    """Every pending schedule item recomputed under `policies`: the differences, and with `apply` the schedule
    rewritten to match (in the caller's transaction). Run it without `apply` first: the diff is the dry run a
    data protection officer reviews before a new policy version takes effect."""
    changes: list[PlanChange] = []
    last: UUID | None = None
    while True:
        rows = await repository.facts_page(session, after=last, limit=batch)
        if not rows:
            return changes
        last = rows[-1].contact_ref
        for row in rows:
            facts = _row_facts(row)
            classes = set(row.artifact_classes)
            current = {
                (item.artifact_class, item.item): item
                for item in await repository.scheduled_items(session, row.contact_ref)
            }
            try:
                dues = due_items(policies, facts)
            except (NoPolicyInForce, UnknownRegister):
                continue
            planned = {
                (due.artifact_class.value, item_key(due)): due
                for due in dues
                if due.artifact_class.value in classes
            }
            contact_changes = []
            for key in sorted(current.keys() | planned.keys()):
                old, new = current.get(key), planned.get(key)
                if (
                    old is not None
                    and new is not None
                    and (old.due_at, old.policy_version, old.reason)
                    == (
                        new.due_at,
                        new.policy_version,
                        new.reason,
                    )
                ):
                    continue
                if old is None and new is not None and await _is_done(session, row.contact_ref, key):
                    continue
                contact_changes.append(
                    PlanChange(
                        contact_ref=row.contact_ref,
                        register=row.register,
                        artifact_class=key[0],
                        item=key[1],
                        old_due=old.due_at if old else None,
                        new_due=new.due_at if new else None,
                        old_version=old.policy_version if old else None,
                        new_version=new.policy_version if new else None,
                    )
                )
            if contact_changes and apply:
                await reschedule(session, policies, row.contact_ref, facts, classes)
            changes.extend(contact_changes)


async def _is_done(session: AsyncSession, contact_ref: UUID, key: tuple[str, str]) -> bool:
    return await repository.item_state(session, contact_ref, *key) == "done"
