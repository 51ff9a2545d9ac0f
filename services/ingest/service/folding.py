"""Which event changes which field of its contact: the record store consumer folds a batch of sealed events
into one :class:`ContactUpdate` per contact, which the record store then merges into the stored row.

Only the clear attributes travel outside the seal, so folding needs no data key. Events may arrive in any
order: times are kept as earliest start and latest end, and a case status as the newest one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from shared.contracts.events import ENDING_EVENT_TYPES, SealedContactEvent
from shared.recordstore.store import ContactUpdate

Fold = Callable[[ContactUpdate, SealedContactEvent], None]


def _ends_contact(update: ContactUpdate, event: SealedContactEvent) -> None:
    at = event.occurred_at
    update.ended_at = at if update.ended_at is None else max(update.ended_at, at)


def _case_status(status: str) -> Fold:
    def fold(update: ContactUpdate, event: SealedContactEvent) -> None:
        at = event.occurred_at
        if update.case_status_at is None or at >= update.case_status_at:
            update.case_status, update.case_status_at = status, at

    return fold


FOLDS: dict[str, Fold] = {
    **dict.fromkeys(ENDING_EVENT_TYPES, _ends_contact),
    "case.opened": _case_status("open"),
    "case.closed": _case_status("closed"),
}
"""What an event type changes in its contact beyond what every event changes (see :func:`fold_event`)."""


def fold_event(contacts: dict[UUID, ContactUpdate], event: SealedContactEvent) -> None:
    """Fold one event into its contact's update: every event counts, widens the contact's and its class's time
    span, and sets the direction, agent and case number it carries; FOLDS adds what its type changes."""
    at = event.occurred_at
    update = contacts.get(event.contact_ref)
    if update is None:
        update = contacts[event.contact_ref] = ContactUpdate(
            register=event.register,
            policy_version=event.policy_version,
            channel=event.channel.value,
            started_at=at,
            last_event_at=at,
        )
    update.event_count += 1
    update.started_at = min(update.started_at, at)
    update.last_event_at = max(update.last_event_at, at)
    if (fold := FOLDS.get(event.type)) is not None:
        fold(update, event)
    attrs = event.attributes
    update.direction = attrs.get("direction", update.direction)
    update.agent_id = attrs.get("agent_id", update.agent_id)
    if "case_number" in attrs:
        update.case_number = attrs["case_number"]
    first, last = update.artifact_spans.get(event.artifact_class.value, (at, at))
    update.artifact_spans[event.artifact_class.value] = (min(first, at), max(last, at))


def fold_contacts(events: Iterable[SealedContactEvent]) -> dict[UUID, ContactUpdate]:
    """What a batch of events changes in each of its contacts."""
    contacts: dict[UUID, ContactUpdate] = {}
    for event in events:
        fold_event(contacts, event)
    return contacts
