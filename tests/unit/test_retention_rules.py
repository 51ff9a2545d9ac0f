"""Due times of contacts under the five registers' policies, one test per rule the privacy notices promise."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.retention.calendar import add_period
from services.retention.rules import (
    CaseStatusChange,
    ContactFacts,
    Due,
    NoPolicyInForce,
    case_clock_start,
    describe_period,
    due_items,
    due_items_for_version,
)
from shared.contracts.vocabulary import ArtifactClass
from shared.policy.loader import load_policies
from shared.policy.model import Action, Period, Trigger, UnknownRegister
from shared.policy.registry import PolicyRegistry

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
HELSINKI = ZoneInfo("Europe/Helsinki")

PRH = "prh-customer-service"
PRH_BO = "prh-beneficial-owner-customers"
DVV = "dvv-personal-customer-service"
STATFI = "statfi-chat"
HSY = "hsy-customer-service"


@pytest.fixture(scope="module")
def registry() -> PolicyRegistry:
    return load_policies(POLICY_DIR)


def helsinki(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=HELSINKI)


def end_of_day(year: int, month: int, day: int) -> datetime:
    """The last instant of a local day: where a period clamped to a month's last day falls due."""
    return datetime.combine(date(year, month, day), time.max, tzinfo=HELSINKI)


def by_class(items: list[Due]) -> dict[ArtifactClass, Due]:
    found: dict[ArtifactClass, Due] = {}
    for item in items:
        assert item.artifact_class not in found, f"{item.artifact_class} listed twice"
        found[item.artifact_class] = item
    return found


def local(instant: datetime | None) -> datetime:
    assert instant is not None
    assert instant.tzinfo is UTC
    return instant.astimezone(HELSINKI)


# -------------------------------------------------------------------------------------- PRH customer service


def test_prh_call_recording_6_months_and_contact_history_12_months_from_the_call(
    registry: PolicyRegistry,
) -> None:
    call = ContactFacts(PRH, started_at=helsinki(2026, 3, 2, 9, 15), ended_at=helsinki(2026, 3, 2, 9, 31))
    items = by_class(due_items(registry, call))

    recording = items[ArtifactClass.RECORDING]
    assert (recording.trigger, recording.action) == (Trigger.CONTACT_START, Action.DELETE)
    assert recording.trigger_at == helsinki(2026, 3, 2, 9, 15)
    assert local(recording.due_at) == helsinki(2026, 9, 2, 9, 15)  # summer time by then: 06:15 UTC
    assert recording.due_at == datetime(2026, 9, 2, 6, 15, tzinfo=UTC)
    assert recording.policy_id == "prh-customer-service@2021-10-20"
    assert recording.reason == (
        "kept until 2026-09-02 by prh-customer-service v2021-10-20 recording/6 months from contact start"
    )

    history = items[ArtifactClass.CONTACT_HISTORY]
    assert local(history.due_at) == helsinki(2027, 3, 2, 9, 15)
    assert history.reason == (
        "kept until 2027-03-02 by prh-customer-service v2021-10-20 contact_history/12 months from contact start"
    )


def test_prh_call_on_the_last_day_of_august_is_kept_until_the_end_of_february(
    registry: PolicyRegistry,
) -> None:
    items = by_class(due_items(registry, ContactFacts(PRH, started_at=helsinki(2026, 8, 31, 16, 40))))
    # 31 August + 6 months: February has no 31st, so the end of its last day.
    assert local(items[ArtifactClass.RECORDING].due_at) == end_of_day(2027, 2, 28)
    assert local(items[ArtifactClass.CONTACT_HISTORY].due_at) == helsinki(2027, 8, 31, 16, 40)


def test_prh_chat_and_chatbot_conversations_2_years(registry: PolicyRegistry) -> None:
    chat = by_class(due_items(registry, ContactFacts(PRH, started_at=helsinki(2026, 1, 15, 14, 0))))
    messages = chat[ArtifactClass.MESSAGES]
    assert messages.rule.period == Period(years=2)
    assert local(messages.due_at) == helsinki(2028, 1, 15, 14, 0)
    assert messages.reason == (
        "kept until 2028-01-15 by prh-customer-service v2021-10-20 messages/2 years from contact start"
    )
    # A chatbot conversation on a leap day: two years on, February has 28 days.
    chatbot = by_class(due_items(registry, ContactFacts(PRH, started_at=helsinki(2024, 2, 29, 11, 5))))
    assert local(chatbot[ArtifactClass.MESSAGES].due_at) == end_of_day(2026, 2, 28)


def test_prh_chatbot_numeric_identifiers_redacted_1_hour_after_each_message(registry: PolicyRegistry) -> None:
    sent = (
        helsinki(2026, 5, 4, 10, 2),
        helsinki(2026, 5, 4, 10, 0),  # given out of order: the due items come in time order
        helsinki(2026, 5, 4, 10, 7),
    )
    conversation = ContactFacts(PRH, started_at=helsinki(2026, 5, 4, 10, 0), message_times=sent)
    items = [
        i for i in due_items(registry, conversation) if i.artifact_class is ArtifactClass.CHATBOT_IDENTIFIERS
    ]

    assert [i.trigger_at for i in items] == sorted(sent)
    assert [local(i.due_at) for i in items] == [
        helsinki(2026, 5, 4, 11, 0),
        helsinki(2026, 5, 4, 11, 2),
        helsinki(2026, 5, 4, 11, 7),
    ]
    assert {(i.action, i.trigger) for i in items} == {(Action.REDACT, Trigger.MESSAGE_SENT)}
    assert items[0].reason == (
        "redacted at 2026-05-04 11:00 by prh-customer-service v2021-10-20 chatbot_identifiers/1 hour from the message"
    )


def test_prh_chatbot_identifiers_hour_is_elapsed_time_across_the_spring_change(
    registry: PolicyRegistry,
) -> None:
    # 02:30 EET on 29 March 2026; an hour later the clocks show 04:30 EEST.
    sent = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    conversation = ContactFacts(PRH, started_at=sent, message_times=(sent,))
    items = by_class(due_items(registry, conversation))
    assert items[ArtifactClass.CHATBOT_IDENTIFIERS].due_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert items[ArtifactClass.CHATBOT_IDENTIFIERS].reason.startswith("redacted at 2026-03-29 04:30 ")


def test_prh_chatbot_without_messages_has_no_redaction_clock(registry: PolicyRegistry) -> None:
    items = by_class(due_items(registry, ContactFacts(PRH, started_at=helsinki(2026, 5, 4, 10, 0))))
    identifiers = items[ArtifactClass.CHATBOT_IDENTIFIERS]
    assert identifiers.trigger_at is None and identifiers.due_at is None
    assert identifiers.reason == "no clock yet: waits for a message to be sent (message_sent)"


def test_prh_sms_survey_answers_and_their_history_12_months(registry: PolicyRegistry) -> None:
    survey = ContactFacts(PRH, started_at=helsinki(2026, 5, 20, 12, 30), message_times=())
    items = by_class(due_items(registry, survey))
    answers = items[ArtifactClass.SURVEY_ANSWERS]
    history = items[ArtifactClass.CONTACT_HISTORY]
    assert answers.rule.period == history.rule.period == Period(months=12)
    assert local(answers.due_at) == local(history.due_at) == helsinki(2027, 5, 20, 12, 30)
    assert answers.reason == (
        "kept until 2027-05-20 by prh-customer-service v2021-10-20 survey_answers/12 months from contact start"
    )


def test_prh_contact_before_the_2021_notice_follows_the_2018_notice(registry: PolicyRegistry) -> None:
    # 19.10.2021 23:30 in Helsinki: the 2018 version (no chatbot, no SMS, chat participant details 2 years).
    items = by_class(due_items(registry, ContactFacts(PRH, started_at=helsinki(2021, 10, 19, 23, 30))))
    assert set(items) == {
        ArtifactClass.RECORDING,
        ArtifactClass.CONTACT_HISTORY,
        ArtifactClass.MESSAGES,
        ArtifactClass.PARTICIPANT_DATA,
    }
    assert {i.policy_version for i in items.values()} == {"2018-05-25"}
    assert local(items[ArtifactClass.RECORDING].due_at) == helsinki(2022, 4, 19, 23, 30)
    assert local(items[ArtifactClass.PARTICIPANT_DATA].due_at) == helsinki(2023, 10, 19, 23, 30)
    assert items[ArtifactClass.RECORDING].reason == (
        "kept until 2022-04-19 by prh-customer-service v2018-05-25 recording/6 months from contact start"
    )
    # An hour later, on 20.10.2021 local time (still 19.10 in UTC), the 2021 version governs.
    later = due_items(registry, ContactFacts(PRH, started_at=datetime(2021, 10, 19, 21, 30, tzinfo=UTC)))
    assert {i.policy_version for i in later} == {"2021-10-20"}
    assert ArtifactClass.PARTICIPANT_DATA not in by_class(later)


def test_prh_contact_before_recording_began_is_refused(registry: PolicyRegistry) -> None:
    with pytest.raises(NoPolicyInForce) as info:
        due_items(registry, ContactFacts(PRH, started_at=helsinki(2017, 9, 30, 23, 59)))
    assert info.value.register == PRH


# ------------------------------------------------------------------------------ PRH beneficial-owner register


def test_beneficial_owner_identification_5_years(registry: PolicyRegistry) -> None:
    items = due_items(registry, ContactFacts(PRH_BO, started_at=helsinki(2026, 3, 2, 13, 45)))
    assert len(items) == 1
    (identification,) = items
    assert identification.artifact_class is ArtifactClass.IDENTIFICATION
    assert local(identification.due_at) == helsinki(2031, 3, 2, 13, 45)
    assert identification.reason == (
        "kept until 2031-03-02 by prh-beneficial-owner-customers v2021-10-20 identification/5 years "
        "from contact start"
    )
    leap_day = due_items(registry, ContactFacts(PRH_BO, started_at=helsinki(2024, 2, 29, 9, 0)))
    assert local(leap_day[0].due_at) == end_of_day(2029, 2, 28)


# ------------------------------------------------------------------------------------------------------- DVV

CASE_CLASSES = {
    ArtifactClass.CASE_DATA,
    ArtifactClass.MESSAGES,
    ArtifactClass.CONTACT_HISTORY,
    ArtifactClass.ATTACHMENTS,
    ArtifactClass.SURVEY_ANSWERS,
}


def dvv_case(*history: tuple[str, datetime]) -> ContactFacts:
    return ContactFacts(
        DVV,
        started_at=helsinki(2026, 1, 12, 8, 50),
        case_history=tuple(CaseStatusChange(status, at) for status, at in history),  # type: ignore[arg-type]
    )


def case_items(registry: PolicyRegistry, facts: ContactFacts) -> list[Due]:
    items = [i for i in due_items(registry, facts) if i.trigger is Trigger.CASE_CLOSED]
    assert {i.artifact_class for i in items} == CASE_CLASSES
    return items


def test_dvv_case_data_1_year_after_the_case_is_closed(registry: PolicyRegistry) -> None:
    facts = dvv_case(("open", helsinki(2026, 1, 12, 8, 50)), ("closed", helsinki(2026, 2, 3, 14, 20)))
    for item in case_items(registry, facts):
        assert item.trigger_at == helsinki(2026, 2, 3, 14, 20)
        assert local(item.due_at) == helsinki(2027, 2, 3, 14, 20)
    case_data = by_class(due_items(registry, facts))[ArtifactClass.CASE_DATA]
    assert case_data.reason == (
        "kept until 2027-02-03 by dvv-personal-customer-service v2020-01-01 case_data/1 year from case closing"
    )


def test_dvv_open_case_has_no_clock_yet(registry: PolicyRegistry) -> None:
    for facts in (dvv_case(("open", helsinki(2026, 1, 12, 8, 50))), dvv_case()):
        for item in case_items(registry, facts):
            assert item.trigger_at is None and item.due_at is None
            assert item.reason == "no clock yet: waits for the case to be closed (case_closed)"


def test_dvv_reopened_case_stops_the_clock(registry: PolicyRegistry) -> None:
    facts = dvv_case(
        ("open", helsinki(2026, 1, 12, 8, 50)),
        ("closed", helsinki(2026, 2, 3, 14, 20)),
        ("open", helsinki(2026, 6, 1, 9, 0)),
    )
    for item in case_items(registry, facts):
        assert item.due_at is None and item.trigger_at is None
        assert item.reason == (
            "clock stopped: the case was reopened on 2026-06-01; waits for the case to be closed again (case_closed)"
        )


def test_dvv_new_closing_restarts_the_clock_from_the_new_closing(registry: PolicyRegistry) -> None:
    facts = dvv_case(
        ("open", helsinki(2026, 1, 12, 8, 50)),
        ("closed", helsinki(2026, 2, 3, 14, 20)),
        ("open", helsinki(2026, 6, 1, 9, 0)),
        ("closed", helsinki(2026, 7, 15, 11, 10)),
    )
    for item in case_items(registry, facts):
        assert item.trigger_at == helsinki(2026, 7, 15, 11, 10)
        assert local(item.due_at) == helsinki(2027, 7, 15, 11, 10)


def test_dvv_repeated_closing_without_reopening_keeps_the_first_closing(registry: PolicyRegistry) -> None:
    facts = dvv_case(
        ("open", helsinki(2026, 1, 12, 8, 50)),
        ("closed", helsinki(2026, 2, 3, 14, 20)),
        ("closed", helsinki(2026, 2, 10, 9, 0)),
    )
    for item in case_items(registry, facts):
        assert local(item.due_at) == helsinki(2027, 2, 3, 14, 20)


def test_dvv_phone_recording_1_year_after_the_contact(registry: PolicyRegistry) -> None:
    call = ContactFacts(DVV, started_at=helsinki(2026, 3, 2, 9, 0), ended_at=helsinki(2026, 3, 2, 9, 22))
    recording = by_class(due_items(registry, call))[ArtifactClass.RECORDING]
    assert (recording.trigger, recording.trigger_at) == (Trigger.CONTACT_END, helsinki(2026, 3, 2, 9, 22))
    assert local(recording.due_at) == helsinki(2027, 3, 2, 9, 22)
    assert recording.reason == (
        "kept until 2027-03-02 by dvv-personal-customer-service v2020-01-01 recording/1 year from contact end"
    )
    ongoing = ContactFacts(DVV, started_at=helsinki(2026, 3, 2, 9, 0))
    waiting = by_class(due_items(registry, ongoing))[ArtifactClass.RECORDING]
    assert waiting.due_at is None
    assert waiting.reason == "no clock yet: waits for the contact to end (contact_end)"


def test_dvv_contact_before_the_agency_existed_is_refused(registry: PolicyRegistry) -> None:
    with pytest.raises(NoPolicyInForce):
        due_items(registry, ContactFacts(DVV, started_at=helsinki(2019, 12, 31, 23, 0)))


# --------------------------------------------------------------------------------- Statistics Finland, HSY


def test_statfi_chat_35_days(registry: PolicyRegistry) -> None:
    # 10 March 2026 12:00 EET; 35 calendar days later the clocks show summer time, still 12:00.
    items = by_class(due_items(registry, ContactFacts(STATFI, started_at=helsinki(2026, 3, 10, 12, 0))))
    assert set(items) == {
        ArtifactClass.MESSAGES,
        ArtifactClass.PARTICIPANT_DATA,
        ArtifactClass.CONTACT_HISTORY,
    }
    for item in items.values():
        assert local(item.due_at) == helsinki(2026, 4, 14, 12, 0)
        assert item.due_at == datetime(2026, 4, 14, 9, 0, tzinfo=UTC)
    assert items[ArtifactClass.MESSAGES].reason == (
        "kept until 2026-04-14 by statfi-chat v2018-05-23 messages/35 days from contact start"
    )


def test_hsy_recordings_12_months(registry: PolicyRegistry) -> None:
    call = ContactFacts(HSY, started_at=helsinki(2026, 1, 31, 15, 5), ended_at=helsinki(2026, 1, 31, 15, 12))
    items = by_class(due_items(registry, call))
    recording = items[ArtifactClass.RECORDING]
    assert recording.trigger is Trigger.CONTACT_START
    assert local(recording.due_at) == helsinki(2027, 1, 31, 15, 5)
    assert recording.reason == (
        "kept until 2027-01-31 by hsy-customer-service v2018-05-25 recording/12 months from contact start"
    )


def test_a_class_the_register_does_not_keep_gives_nothing(registry: PolicyRegistry) -> None:
    sent = helsinki(2026, 5, 4, 10, 0)
    for register in (HSY, STATFI, DVV, PRH_BO):
        facts = ContactFacts(register, started_at=sent, message_times=(sent,))
        version = registry.version_at(register, sent)
        assert version is not None
        items = due_items(registry, facts)
        assert [i.artifact_class for i in items] == list(version.classes)
        assert ArtifactClass.CHATBOT_IDENTIFIERS not in {i.artifact_class for i in items}


# --------------------------------------------------------------------------------------------- the contract


def test_the_version_taking_function_uses_the_version_it_is_given(registry: PolicyRegistry) -> None:
    # A contact stamped with the 2018 version is judged by it, whatever its date.
    facts = ContactFacts(PRH, started_at=helsinki(2026, 3, 2, 9, 15))
    items = due_items_for_version(registry.version(PRH, "2018-05-25"), facts)
    assert {i.policy_version for i in items} == {"2018-05-25"}
    assert ArtifactClass.PARTICIPANT_DATA in by_class(items)


def test_facts_of_another_register_are_refused(registry: PolicyRegistry) -> None:
    with pytest.raises(ValueError, match="statfi-chat"):
        due_items_for_version(registry.latest(PRH), ContactFacts(STATFI, started_at=helsinki(2026, 3, 2)))
    with pytest.raises(UnknownRegister):
        due_items(registry, ContactFacts("kela-chat", started_at=helsinki(2026, 3, 2)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"started_at": datetime(2026, 3, 2, 9, 15)}, "started_at must be a timezone-aware"),
        ({"ended_at": helsinki(2026, 3, 2, 9, 0)}, "ended_at is before started_at"),
        ({"ended_at": datetime(2026, 3, 2, 10, 0)}, "ended_at must be a timezone-aware"),
        ({"case_history": (("pending", helsinki(2026, 3, 3)),)}, "'open' or 'closed'"),
        ({"case_history": (("closed", datetime(2026, 3, 3)),)}, r"case_history\[0\].at must be"),
        (
            {"case_history": (("closed", helsinki(2026, 3, 4)), ("open", helsinki(2026, 3, 3)))},
            r"case_history\[1\] is earlier",
        ),
        ({"message_times": (datetime(2026, 3, 3),)}, r"message_times\[0\] must be"),
    ],
)
def test_facts_refuse_what_would_give_a_wrong_due_time(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"register": PRH, "started_at": helsinki(2026, 3, 2, 9, 15), **kwargs}
    with pytest.raises(ValueError, match=message):
        ContactFacts(**arguments)  # type: ignore[arg-type]


def test_facts_built_from_plain_sequences_equal_the_normalised_ones() -> None:
    started, closed = helsinki(2026, 3, 2), helsinki(2026, 3, 3)
    plain: dict[str, object] = {"case_history": [("closed", closed)], "message_times": [closed, closed]}
    normalised = ContactFacts(
        PRH, started, case_history=(CaseStatusChange("closed", closed),), message_times=(closed,)
    )
    assert ContactFacts(PRH, started, **plain) == normalised  # type: ignore[arg-type]
    assert hash(ContactFacts(PRH, started, **plain)) == hash(normalised)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("period", "words"),
    [
        (Period(months=6), "6 months"),
        (Period(years=1), "1 year"),
        (Period(days=35), "35 days"),
        (Period(hours=1), "1 hour"),
        (Period(years=1, months=6), "1 year 6 months"),
        (Period(hours=2, minutes=30), "2 hours 30 minutes"),
    ],
)
def test_periods_in_words(period: Period, words: str) -> None:
    assert describe_period(period) == words


# ------------------------------------------------------------------------------------------------ properties

case_changes = st.builds(
    CaseStatusChange,
    status=st.sampled_from(["open", "closed"]),
    at=st.datetimes(min_value=datetime(2020, 1, 2), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
)
case_histories = st.lists(case_changes, max_size=8).map(
    lambda changes: tuple(sorted(changes, key=lambda change: change.at))
)


@given(history=case_histories)
def test_case_clock_runs_only_while_closed_from_the_closing_after_the_last_reopening(
    history: tuple[CaseStatusChange, ...],
) -> None:
    start = case_clock_start(history)
    if not history or history[-1].status == "open":
        assert start is None
        return
    # Read backwards: the clock starts at the first closing after the last opening.
    openings = [i for i, change in enumerate(history) if change.status == "open"]
    first_closing_after = openings[-1] + 1 if openings else 0
    assert start == history[first_closing_after].at


@given(history=case_histories, registered=st.sampled_from([2020, 2026]))
def test_every_case_class_follows_the_same_clock(
    registry: PolicyRegistry, history: tuple[CaseStatusChange, ...], registered: int
) -> None:
    facts = ContactFacts(DVV, started_at=helsinki(registered, 1, 2), case_history=history)
    items = case_items(registry, facts)
    start = case_clock_start(history)
    for item in items:
        assert item.trigger_at == start
        assert item.due_at == (None if start is None else add_period(start, Period(years=1)))
        assert (item.due_at is None) == item.reason.startswith(("no clock yet", "clock stopped"))


@given(
    sent=st.lists(
        st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
        max_size=20,
    ).flatmap(lambda times: st.just(times + times[:2]))
)
def test_one_redaction_per_chatbot_message_an_hour_after_it(
    registry: PolicyRegistry, sent: list[datetime]
) -> None:
    facts = ContactFacts(PRH, started_at=datetime(2022, 1, 1, tzinfo=UTC), message_times=tuple(sent))
    items = [i for i in due_items(registry, facts) if i.artifact_class is ArtifactClass.CHATBOT_IDENTIFIERS]
    if not sent:
        assert [i.due_at for i in items] == [None]
        return
    # Messages sent at the same instant share one due time.
    assert [i.trigger_at for i in items] == sorted(set(sent))
    assert [i.due_at for i in items] == [at + timedelta(hours=1) for at in sorted(set(sent))]
