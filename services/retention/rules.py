"""Due times of one contact's artifacts under its register's policy: the pure core of the retention engine.

No I/O and no clock reads: the caller gathers the facts of a contact (`ContactFacts`) and the policy, and gets
back one `Due` per artifact class the policy keeps, with a sentence a data protection officer can read.

Which policy version governs a contact: the version in force at the contact's start (`PolicyRegistry.version_at`,
judged by the local date in the register's zone). `due_items` picks it; `due_items_for_version` takes a version
the caller already holds, e.g. the one stamped on the stored contact (`registry.version(register, id)`).

Clocks, by the rule's trigger:

- ``contact_start``: from `started_at`.
- ``contact_end``: from `ended_at`; a contact that has not ended has no clock yet (`due_at` None).
- ``case_closed``: from the closing that began the case's current closed period. A reopened case stops the clock
  (no due time while it is open) and the next closing starts it again from that closing. A second closing with
  no reopening in between changes nothing: the case has been closed since the first one, and the period runs
  from then. A case never closed has no clock yet. Contacts with no case events at all (an anonymous chat in a
  register whose rules wait for a closed case) are reported the same way, never silently kept.
- ``message_sent``: one `Due` per message send time, in time order (field-level rules such as
  PRH's "numeric identifiers typed into the chatbot are erased within an hour" redact each message separately;
  the caller takes the earliest pending one if it wants a single wake-up). No messages: no clock yet.

A class the policy version does not keep produces nothing: the output lists exactly the version's retention
rules, in the policy's order. A class it keeps is listed even when this contact holds no such artifact (a phone
call has no messages); matching items to the contact's stored artifacts is the caller's step. Due times come
from `services.retention.calendar.add_period` in the version's zone.

Reasons read "kept until 2026-09-02 by prh-customer-service v2021-10-20 recording/6 months from contact start"
(the local date in the register's zone; "redacted at <date> <HH:MM>" for a field-level rule, and the time is
given whenever the period is counted in hours or minutes), or "no clock yet: waits for the case to be closed
(case_closed)", or "clock stopped: the case was reopened on <date>; waits for the case to be closed again
(case_closed)".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from services.retention.calendar import add_period
from shared.contracts.vocabulary import ArtifactClass
from shared.policy.model import Action, Period, PolicyVersion, RetentionRule, Trigger
from shared.policy.registry import PolicyRegistry

__all__ = [
    "CaseStatus",
    "CaseStatusChange",
    "ContactFacts",
    "Due",
    "NoPolicyInForce",
    "case_clock_start",
    "describe_period",
    "due_items",
    "due_items_for_version",
]

CaseStatus = Literal["open", "closed"]
_CASE_STATUSES = frozenset({"open", "closed"})


class CaseStatusChange(NamedTuple):
    """One step of a case's status history: `case.opened` gives "open", `case.closed` gives "closed"."""

    status: CaseStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class ContactFacts:
    """What the retention rules need to know about one contact; every datetime timezone-aware.

    `case_history` lists the case's status changes in the order they happened (ties keep the given order);
    plain ``("closed", at)`` tuples are accepted. `message_times` are the send times of the messages a
    ``message_sent`` rule applies to (for PRH's chatbot identifiers: the contact's chatbot messages); they are
    kept sorted and distinct, since messages sent at the same instant fall due together.
    """

    register: str
    started_at: datetime
    ended_at: datetime | None = None
    case_history: tuple[CaseStatusChange, ...] = ()
    message_times: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.register, str) or not self.register:
            raise ValueError("ContactFacts.register must name a register")
        _require_aware("started_at", self.started_at)
        if self.ended_at is not None:
            _require_aware("ended_at", self.ended_at)
            if self.ended_at < self.started_at:
                raise ValueError("ContactFacts.ended_at is before started_at")
        history = tuple(CaseStatusChange(*change) for change in self.case_history)
        for index, change in enumerate(history):
            if change.status not in _CASE_STATUSES:
                raise ValueError(f"case_history[{index}].status must be 'open' or 'closed'")
            _require_aware(f"case_history[{index}].at", change.at)
            if index and change.at < history[index - 1].at:
                raise ValueError(f"case_history[{index}] is earlier than the change before it")
        for index, sent_at in enumerate(self.message_times):
            _require_aware(f"message_times[{index}]", sent_at)
        # Normalised so that equal facts compare and hash equal, whatever sequence types the caller passed.
        object.__setattr__(self, "case_history", history)
        object.__setattr__(self, "message_times", tuple(sorted(set(self.message_times))))


@dataclass(frozen=True, slots=True)
class Due:
    """When one artifact class of a contact falls due (or why it cannot yet), and under which rule.

    `trigger_at` is the instant the clock started and `due_at` (aware, UTC) the instant the action is due; both
    None while the clock has not started. `reason` is the sentence shown to a data protection officer.
    """

    artifact_class: ArtifactClass
    action: Action
    trigger: Trigger
    trigger_at: datetime | None
    due_at: datetime | None
    register: str
    policy_version: str
    rule: RetentionRule
    reason: str

    @property
    def policy_id(self) -> str:
        """`register@version`, as records and audit entries name a policy."""
        return f"{self.register}@{self.policy_version}"


class NoPolicyInForce(LookupError):
    """The register had no policy version in force at the contact's start (before the register began)."""

    def __init__(self, register: str, at: datetime):
        self.register = register
        self.at = at
        super().__init__(f"register {register!r} has no policy version in force at {at.isoformat()}")


def due_items(registry: PolicyRegistry, facts: ContactFacts) -> list[Due]:
    """The due items of a contact under the version in force at its start.

    Raises UnknownRegister for a register without a policy file and NoPolicyInForce for a contact before its
    register's first version: a contact no policy covers is for a person to look at, never kept silently.
    """
    version = registry.version_at(facts.register, facts.started_at)
    if version is None:
        raise NoPolicyInForce(facts.register, facts.started_at)
    return due_items_for_version(version, facts)


def due_items_for_version(version: PolicyVersion, facts: ContactFacts) -> list[Due]:
    """The due items of a contact under `version`: one per retention rule, one per message for message rules."""
    if facts.register != version.register:
        raise ValueError(
            f"the contact belongs to {facts.register!r}, the policy version to {version.register!r}"
        )
    items: list[Due] = []
    for rule in version.retention:
        items.extend(_items_for_rule(version, rule, facts))
    return items


def case_clock_start(history: tuple[CaseStatusChange, ...]) -> datetime | None:
    """When the ``case_closed`` clock started: the closing that began the current closed period, else None."""
    return _case_clock(history)[0]


def describe_period(period: Period) -> str:
    """A period in words: "6 months", "1 year", "35 days", "1 hour", "1 year 6 months"."""
    parts = [
        f"{value} {unit if value == 1 else unit + 's'}"
        for value, unit in (
            (period.years, "year"),
            (period.months, "month"),
            (period.days, "day"),
            (period.hours, "hour"),
            (period.minutes, "minute"),
        )
        if value
    ]
    return " ".join(parts) or "no time"


# ------------------------------------------------------------------------------------------------ internals

_FROM = {
    Trigger.CONTACT_START: "contact start",
    Trigger.CONTACT_END: "contact end",
    Trigger.CASE_CLOSED: "case closing",
    Trigger.MESSAGE_SENT: "the message",
}

_WAITS_FOR = {
    Trigger.CONTACT_END: "the contact to end",
    Trigger.CASE_CLOSED: "the case to be closed",
    Trigger.MESSAGE_SENT: "a message to be sent",
}


def _items_for_rule(version: PolicyVersion, rule: RetentionRule, facts: ContactFacts) -> list[Due]:
    if rule.trigger is Trigger.CONTACT_START:
        return [_running(version, rule, facts.started_at)]
    if rule.trigger is Trigger.CONTACT_END:
        if facts.ended_at is None:
            return [_waiting(version, rule, _no_clock_yet(rule))]
        return [_running(version, rule, facts.ended_at)]
    if rule.trigger is Trigger.CASE_CLOSED:
        closed_at, reopened_at = _case_clock(facts.case_history)
        if closed_at is not None:
            return [_running(version, rule, closed_at)]
        if reopened_at is not None:
            reopened_on = reopened_at.astimezone(version.time_zone).date().isoformat()
            return [
                _waiting(
                    version,
                    rule,
                    f"clock stopped: the case was reopened on {reopened_on}; "
                    f"waits for the case to be closed again ({rule.trigger.value})",
                )
            ]
        return [_waiting(version, rule, _no_clock_yet(rule))]
    if rule.trigger is Trigger.MESSAGE_SENT:
        if not facts.message_times:
            return [_waiting(version, rule, _no_clock_yet(rule))]
        return [_running(version, rule, sent_at) for sent_at in facts.message_times]
    raise AssertionError(f"unhandled trigger {rule.trigger!r}")  # a new Trigger member needs a clock here


def _case_clock(history: tuple[CaseStatusChange, ...]) -> tuple[datetime | None, datetime | None]:
    """(start of the running clock, when the case was reopened if that stopped a clock); at most one is set."""
    clock_start: datetime | None = None
    reopened_at: datetime | None = None
    for change in history:
        if change.status == "closed":
            if clock_start is None:
                clock_start = change.at
            reopened_at = None
        else:
            if clock_start is not None:
                reopened_at = change.at
            clock_start = None
    return clock_start, reopened_at


def _running(version: PolicyVersion, rule: RetentionRule, trigger_at: datetime) -> Due:
    due_at = add_period(trigger_at, rule.period, version.time_zone)
    local = due_at.astimezone(version.time_zone)
    # A date is what a reader needs for periods of days or more; an hour-scale rule needs the time too.
    hour_scale = bool(rule.period.hours or rule.period.minutes)
    when = local.strftime("%Y-%m-%d %H:%M") if hour_scale else local.date().isoformat()
    verb = "redacted at" if rule.action is Action.REDACT else "kept until"
    reason = (
        f"{verb} {when} by {version.register} v{version.version} "
        f"{rule.artifact_class.value}/{describe_period(rule.period)} from {_FROM[rule.trigger]}"
    )
    return _due(version, rule, trigger_at, due_at, reason)


def _waiting(version: PolicyVersion, rule: RetentionRule, reason: str) -> Due:
    return _due(version, rule, None, None, reason)


def _no_clock_yet(rule: RetentionRule) -> str:
    return f"no clock yet: waits for {_WAITS_FOR[rule.trigger]} ({rule.trigger.value})"


def _due(
    version: PolicyVersion,
    rule: RetentionRule,
    trigger_at: datetime | None,
    due_at: datetime | None,
    reason: str,
) -> Due:
    return Due(
        artifact_class=rule.artifact_class,
        action=rule.action,
        trigger=rule.trigger,
        trigger_at=trigger_at,
        due_at=due_at,
        register=version.register,
        policy_version=version.version,
        rule=rule,
        reason=reason,
    )


def _require_aware(name: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"ContactFacts.{name} must be a timezone-aware datetime")
