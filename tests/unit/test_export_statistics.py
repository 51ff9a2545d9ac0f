"""The suppression rule of the service-development statistics, and the period and CSV it is published in."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from services.export.statistics import (
    CSV_COLUMNS,
    THRESHOLD,
    Cell,
    PublishedCell,
    Statistics,
    period,
    suppress,
    to_csv,
)

REGISTER = "hsy-customer-service"
WEEK = "2026-W47"


def cell(
    channel: str,
    service: str,
    contacts: int,
    *,
    ended: int = 0,
    total: int | None = None,
    median: int | None = None,
    week: str = WEEK,
    register: str = REGISTER,
) -> Cell:
    return Cell(register, week, channel, service, contacts, ended, total, median)


def by_key(statistics: Statistics) -> dict[tuple[str, str], PublishedCell]:
    return {(c.channel, c.service): c for c in statistics.cells}


def test_the_threshold_is_five() -> None:
    assert THRESHOLD == 5


def test_a_cell_of_five_is_shown_and_a_cell_of_four_suppressed_with_the_next_smallest() -> None:
    published = suppress(
        [
            cell("phone", "inbound", 40, ended=40, total=12_000, median=280),
            cell("phone", "outbound", 4, ended=4, total=800, median=190),
            cell("chat", "inbound", 5, ended=5, total=1500, median=300),
        ]
    )
    cells = by_key(published)
    # Primary: the cell of 4. Secondary: the cell of 5, the smallest shown, else the total gives the 4 back.
    assert cells[("phone", "outbound")].suppressed
    assert cells[("chat", "inbound")].suppressed
    for key in (("phone", "outbound"), ("chat", "inbound")):
        c = cells[key]
        assert (c.contacts, c.ended, c.duration_total_seconds, c.duration_median_seconds) == (None,) * 4
    shown = cells[("phone", "inbound")]
    assert not shown.suppressed
    assert (shown.contacts, shown.ended, shown.duration_total_seconds, shown.duration_median_seconds) == (
        40,
        40,
        12_000,
        280,
    )
    [total] = published.totals
    assert (total.contacts, total.suppressed) == (49, False)


def test_cells_of_five_and_more_are_all_shown() -> None:
    published = suppress(
        [cell("phone", "inbound", 5), cell("chat", "inbound", 6), cell("email", "inbound", 9)]
    )
    assert [c.contacts for c in published.cells] == [6, 9, 5]  # channel, then service order
    assert not any(c.suppressed for c in published.cells)
    assert published.totals[0].contacts == 20


def test_secondary_suppression_takes_the_smallest_shown_cell_ties_by_channel_then_service() -> None:
    published = suppress(
        [
            cell("phone", "inbound", 100),
            cell("phone", "outbound", 7),
            cell("email", "inbound", 7),
            cell("sms", "outbound", 2),
        ]
    )
    cells = by_key(published)
    assert {key for key, c in cells.items() if c.suppressed} == {("sms", "outbound"), ("email", "inbound")}
    assert published.totals[0].contacts == 116


def test_two_small_cells_protect_each_other_without_secondary_suppression() -> None:
    published = suppress(
        [cell("phone", "inbound", 50), cell("phone", "outbound", 3), cell("chat", "inbound", 4)]
    )
    cells = by_key(published)
    assert cells[("phone", "inbound")].contacts == 50
    assert cells[("phone", "outbound")].suppressed and cells[("chat", "inbound")].suppressed
    assert published.totals[0].contacts == 57


def test_suppressed_cells_summing_to_less_than_the_threshold_take_another_cell() -> None:
    # 1 + 2 = 3 withheld: a reader would know both cells hold fewer than 5 together.
    published = suppress(
        [cell("phone", "inbound", 50), cell("phone", "outbound", 1), cell("chat", "inbound", 2)]
    )
    cells = by_key(published)
    assert all(c.suppressed for c in cells.values())
    assert published.totals[0].contacts == 53


def test_withheld_cells_of_one_contact_each_never_add_up_to_a_known_count() -> None:
    # Six cells of one contact: their sum, 6, reaches the threshold, but 6 cells summing to 6 are all ones.
    singles = [cell(channel, "inbound", 1) for channel in ("chat", "chatbot", "email", "identification")]
    singles += [cell("phone", "inbound", 1), cell("phone", "outbound", 1)]
    published = suppress(singles)
    assert all(c.suppressed for c in published.cells)
    assert published.totals[0].suppressed and published.totals[0].contacts is None


def test_a_total_below_the_threshold_is_withheld_with_every_cell() -> None:
    published = suppress([cell("phone", "inbound", 3)])
    assert published.cells[0].suppressed
    assert published.totals[0].contacts is None and published.totals[0].suppressed


def test_a_single_cell_of_five_is_its_own_total() -> None:
    published = suppress([cell("phone", "inbound", 5)])
    assert published.cells[0].contacts == 5
    assert published.totals[0].contacts == 5


def test_each_register_week_is_suppressed_on_its_own() -> None:
    published = suppress(
        [
            cell("phone", "inbound", 20, week="2026-W46"),
            cell("phone", "outbound", 9, week="2026-W46"),
            cell("phone", "inbound", 20, week="2026-W47"),
            cell("phone", "outbound", 2, week="2026-W47"),
            cell("phone", "inbound", 3, register="dvv-personal-customer-service"),
        ]
    )
    shown = {(c.register, c.week, c.service): c.contacts for c in published.cells}
    assert shown[(REGISTER, "2026-W46", "inbound")] == 20
    assert shown[(REGISTER, "2026-W46", "outbound")] == 9
    assert shown[(REGISTER, "2026-W47", "inbound")] is None
    assert shown[(REGISTER, "2026-W47", "outbound")] is None
    totals = {(t.register, t.week): t.contacts for t in published.totals}
    assert totals == {
        ("dvv-personal-customer-service", WEEK): None,
        (REGISTER, "2026-W46"): 29,
        (REGISTER, "2026-W47"): 22,
    }


def test_durations_need_five_ended_contacts_and_the_rule_is_not_fooled_by_large_cells() -> None:
    published = suppress(
        [
            cell("phone", "inbound", 30, ended=4, total=1000, median=250),
            cell("chat", "inbound", 12, ended=0),
            cell("phone", "outbound", 8, ended=5, total=900, median=170),
        ]
    )
    cells = by_key(published)
    few = cells[("phone", "inbound")]
    assert (few.contacts, few.ended, few.duration_total_seconds, few.duration_median_seconds) == (
        30,
        None,
        None,
        None,
    )
    none = cells[("chat", "inbound")]
    assert (none.contacts, none.ended, none.duration_total_seconds) == (12, 0, None)
    enough = cells[("phone", "outbound")]
    assert (enough.ended, enough.duration_total_seconds, enough.duration_median_seconds) == (5, 900, 170)


def test_the_same_cells_in_any_order_give_the_same_publication() -> None:
    cells = [cell("phone", "inbound", 9), cell("sms", "outbound", 4), cell("email", "inbound", 6)]
    assert suppress(cells) == suppress(list(reversed(cells)))


def test_csv_marks_withheld_values_and_leaves_missing_ones_empty() -> None:
    published = suppress(
        [
            cell("phone", "inbound", 40, ended=40, total=12_000, median=280),
            cell("phone", "outbound", 4, ended=4, total=800, median=190),
            cell("chat", "inbound", 6, ended=2, total=400, median=200),
            cell("email", "inbound", 7),
        ]
    )
    text = to_csv(published)
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = {(r[2], r[3]): r[4:] for r in rows[1:]}
    assert body[("phone", "inbound")] == ["40", "40", "12000", "280"]
    assert body[("phone", "outbound")] == ["..", "..", "..", ".."]
    # Secondary: the smallest shown cell (6) goes too.
    assert body[("chat", "inbound")] == ["..", "..", "..", ".."]
    assert body[("email", "inbound")] == ["7", "0", "", ""]
    assert body[("all", "all")] == ["57", "", "", ""]
    assert [r[2] for r in rows[1:]][-1] == "all"  # the total closes its register-week


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted() -> None:
    published = suppress([cell("=cmd", "inbound", 9, register="-x")])
    rows = list(csv.reader(io.StringIO(to_csv(published))))
    assert rows[1][:3] == ["'-x", WEEK, "'=cmd"]


def test_a_period_covers_whole_completed_weeks_on_the_helsinki_calendar() -> None:
    # Wednesday 2026-11-25, 12:00 in Helsinki: week 48 is not over, so the last week is 47 (16-22 November).
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    latest = period(None, None, now)
    assert (latest.first_day, latest.last_day) == (None, date(2026, 11, 22))
    cut = period(date(2026, 11, 4), date(2026, 11, 10), now)
    assert (cut.first_day, cut.last_day) == (date(2026, 11, 2), date(2026, 11, 15))
    assert cut.start is not None and cut.start.isoformat() == "2026-11-02T00:00:00+02:00"
    assert cut.end.isoformat() == "2026-11-16T00:00:00+02:00"
    # The Helsinki calendar decides when a week is over, not UTC's.
    sunday_night = datetime(2026, 11, 22, 21, 30, tzinfo=UTC)  # 23:30 in Helsinki, still Sunday
    assert period(None, None, sunday_night).last_day == date(2026, 11, 15)
    monday_morning = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 00:30 Monday in Helsinki
    assert period(None, None, monday_morning).last_day == date(2026, 11, 22)


def test_a_period_asked_for_beyond_the_present_or_the_calendar_stays_in_range() -> None:
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert period(date(9999, 12, 31), date(9999, 12, 31), now).last_day == date(2026, 11, 22)
    early = period(date(1, 1, 1), date(1, 1, 2), now)
    assert early.first_day == date(1900, 1, 1) and early.last_day < early.first_day
    assert early.end.year == 1900
