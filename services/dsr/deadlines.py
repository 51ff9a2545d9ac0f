"""The statutory deadline calendar for data-subject requests, counted in Europe/Helsinki.

Pure functions: no I/O and no clock reads.

Sources:

- GDPR, Regulation (EU) 2016/679, Art. 12(3): the controller answers a request "without undue delay and in any
  event within one month of receipt of the request". That period "may be extended by two further months where
  necessary", and the controller must inform the data subject of any extension, with the reasons for the
  delay, "within one month of receipt of the request".
- Regulation (EEC, Euratom) No 1182/71 determining the rules applicable to periods, dates and time limits: the
  rules EU law uses for its own time limits, and the ones the EDPB applies to Art. 12(3) (Guidelines 01/2022 on
  data subject rights - Right of access).
- Laki säädettyjen määräaikain laskemisesta (Act on the Calculation of Statutory Time Limits) 150/1930, 5 §:
  which days in Finland a time limit cannot end on.

The rules, in the order they apply:

1. The day of receipt is the date in Helsinki of the instant the request was received. The instant must be
   timezone-aware; a naive datetime is refused (ValueError) because it would silently be read in whatever zone
   the server happens to run in. 00:30 on 3 March in Helsinki (22:30 UTC on 2 March) is received on 3 March.
2. A period of months starts on the day after receipt (1182/71 Art. 3(1), second subparagraph: the day of the
   event is not counted) and ends at the end of the day in the last month with the same date as the day of
   receipt (Art. 3(2)(c)): received 2 March, the month ends at the end of 2 April. When the last month has no such
   date, the period ends at the end of that month's last day: received 31 January, the month ends at the end of
   28 February (29 February in a leap year). This is `add_months`; it never rolls.
3. If that last day is a Saturday, a Sunday or a public holiday, the period ends at the end of the next working
   day instead (1182/71 Art. 3(4)). Public holidays are those the Member State where the act is to be done
   designates (Art. 2(1)); in Finland those are the days 150/1930 5 § names:
   - Sundays and the church holidays: New Year's Day (1 January), Epiphany (6 January), Good Friday, Easter
     Sunday, Easter Monday, Ascension Day (39 days after Easter Sunday, a Thursday), Whit Sunday (49 days after
     Easter Sunday), Midsummer Day (the Saturday between 20 and 26 June), All Saints' Day (the Saturday between
     31 October and 6 November), Christmas Day (25 December) and St Stephen's Day (26 December);
   - Independence Day (6 December), May Day (1 May), Christmas Eve (24 December) and Midsummer Eve (the Friday
     between 19 and 25 June);
   - Saturdays.
   Easter Sunday is computed with the anonymous Gregorian algorithm (Meeus/Jones/Butcher), so no holiday
   package is needed and years far ahead are covered. The calendar is the one in force since 1992 (from 1973 to
   1991 Epiphany and Ascension Day were moved to Saturdays), which is all a GDPR request can meet.
4. The extension (Art. 12(3)) is one extension of up to two further months. Counted from the same receipt
   with rule 2, it is receipt + 2 or receipt + 3 months, then rolled with rule 3; it is not counted from the
   rolled end of the first month, since the GDPR gives "two further months" of the same period running from
   receipt. The decision to extend must reach the requester within the first period, so every `Deadline` carries
   the end of the first month (after rolling) as `extension_notice_by`, whether or not it is extended.
5. "The end of a day" is the first instant of the next day in Helsinki: 00:00 local time, returned as an aware
   UTC datetime. Helsinki changes its clocks at 03:00 and 04:00 local time, so 00:00 (and the 09:00 of a
   reminder) always exists exactly once, and the UTC offset of each day's midnight is its own: 22:00 UTC in
   winter, 21:00 UTC in summer.
6. A reminder falls at 09:00 Helsinki time on the working day that is N working days before the last day
   (N = 5 unless given; N = 0 is the last day itself). It is always before the deadline ends. A large N can put
   it before the request was received; it is then already due.

Dates before 1583 are refused (ValueError): the Gregorian computus does not reach back past the calendar it
belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType

from shared.platform.clock import HELSINKI, add_months

__all__ = [
    "HELSINKI",
    "MAX_EXTENSION_MONTHS",
    "REMINDER_TIME",
    "Deadline",
    "easter_sunday",
    "finnish_public_holidays",
    "is_working_day",
    "next_working_day",
    "non_working_reason",
    "reminder_at",
    "statutory_deadline",
]

#: Art. 12(3): "may be extended by two further months".
MAX_EXTENSION_MONTHS = 2

#: Local wall time of a reminder: the start of an office day, so it reaches a caseworker who can still act.
REMINDER_TIME = time(9, 0)

_FIRST_GREGORIAN_YEAR = 1583
_ONE_DAY = timedelta(days=1)
_SATURDAY = 5
_SUNDAY = 6


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a data-subject request must be answered.

    `nominal_last_day` is receipt plus the months, clamped to the month's end (rule 2); `last_day` is that day or,
    if it is not a working day, the next working day (rule 3), and `rolled_because` names what made
    `nominal_last_day` a non-working day ("Saturday", "Christmas Eve", ...) or is None if it was not moved.
    `ends_at` and `extension_notice_by` are aware UTC instants: the end of `last_day` and the end of the first
    month's last day in Helsinki.
    """

    received_on: date
    extension_months: int
    nominal_last_day: date
    last_day: date
    ends_at: datetime
    rolled_because: str | None
    extension_notice_by: datetime

    @property
    def rolled(self) -> bool:
        return self.last_day != self.nominal_last_day


def easter_sunday(year: int) -> date:
    """Western (Gregorian) Easter Sunday of `year`, by the anonymous Gregorian algorithm."""
    _require_gregorian(year)
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_remainder = divmod(century, 4)
    moon_correction = (century + 8) // 25
    solar_correction = (century - moon_correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - solar_correction + 15) % 30
    leap_years, year_remainder = divmod(year_of_century, 4)
    weekday_offset = (32 + 2 * century_remainder + 2 * leap_years - epact - year_remainder) % 7
    exception = (golden + 11 * epact + 22 * weekday_offset) // 451
    month, day = divmod(epact + weekday_offset - 7 * exception + 114, 31)
    return date(year, month, day + 1)


def finnish_public_holidays(year: int) -> dict[date, str]:
    """The days of `year` that 150/1930 5 § names, by English name; plain Saturdays and Sundays are not listed.

    Ascension Day falls on May Day when Easter is on 23 March (2008, 2160): that date gets both names.
    """
    return dict(_holidays(year))


def non_working_reason(day: date) -> str | None:
    """Why a time limit cannot end on `day` (a holiday's name, else "Saturday" or "Sunday"), or None."""
    holiday = _holidays(day.year).get(day)
    if holiday is not None:
        return holiday
    if day.weekday() == _SATURDAY:
        return "Saturday"
    if day.weekday() == _SUNDAY:
        return "Sunday"
    return None


def is_working_day(day: date) -> bool:
    return non_working_reason(day) is None


def next_working_day(day: date) -> date:
    """`day` itself if it is a working day, else the first working day after it."""
    while not is_working_day(day):
        day += _ONE_DAY
    return day


def statutory_deadline(received_at: datetime, *, extension_months: int = 0) -> Deadline:
    """The Art. 12(3) deadline of a request received at the aware instant `received_at`.

    `extension_months` is 0 (no extension) up to `MAX_EXTENSION_MONTHS`; rules in the module docstring.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be a timezone-aware datetime")
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise ValueError(
            f"extension_months must be between 0 and {MAX_EXTENSION_MONTHS}, not {extension_months}"
        )
    received_on = received_at.astimezone(HELSINKI).date()
    _require_gregorian(received_on.year)
    first_last_day = next_working_day(add_months(received_on, 1))
    nominal = add_months(received_on, 1 + extension_months)
    last_day = next_working_day(nominal)
    return Deadline(
        received_on=received_on,
        extension_months=extension_months,
        nominal_last_day=nominal,
        last_day=last_day,
        ends_at=_end_of_day(last_day),
        rolled_because=non_working_reason(nominal),
        extension_notice_by=_end_of_day(first_last_day),
    )


def reminder_at(deadline: Deadline, *, working_days_before: int = 5) -> datetime:
    """09:00 Helsinki time, as an aware UTC instant, `working_days_before` working days before the last day."""
    if working_days_before < 0:
        raise ValueError("working_days_before must not be negative")
    day = deadline.last_day
    for _ in range(working_days_before):
        day -= _ONE_DAY
        while not is_working_day(day):
            day -= _ONE_DAY
    return datetime.combine(day, REMINDER_TIME, tzinfo=HELSINKI).astimezone(UTC)


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day + _ONE_DAY, time(0), tzinfo=HELSINKI).astimezone(UTC)


def _require_gregorian(year: int) -> None:
    if year < _FIRST_GREGORIAN_YEAR:
        raise ValueError(
            f"the Finnish holiday calendar is computed for {_FIRST_GREGORIAN_YEAR} onwards, not {year}"
        )


def _weekday_on_or_after(first: date, weekday: int) -> date:
    return first + timedelta(days=(weekday - first.weekday()) % 7)


@lru_cache(maxsize=256)
def _holidays(year: int) -> Mapping[date, str]:
    # Cached because every day tested for a working day looks its year up; read-only so the cache cannot be
    # corrupted through a returned value.
    easter = easter_sunday(year)
    midsummer_day = _weekday_on_or_after(date(year, 6, 20), _SATURDAY)
    named = [
        (date(year, 1, 1), "New Year's Day"),
        (date(year, 1, 6), "Epiphany"),
        (easter - timedelta(days=2), "Good Friday"),
        (easter, "Easter Sunday"),
        (easter + timedelta(days=1), "Easter Monday"),
        (date(year, 5, 1), "May Day"),
        (easter + timedelta(days=39), "Ascension Day"),
        (easter + timedelta(days=49), "Whit Sunday"),
        (midsummer_day - _ONE_DAY, "Midsummer Eve"),
        (midsummer_day, "Midsummer Day"),
        (_weekday_on_or_after(date(year, 10, 31), _SATURDAY), "All Saints' Day"),
        (date(year, 12, 6), "Independence Day"),
        (date(year, 12, 24), "Christmas Eve"),
        (date(year, 12, 25), "Christmas Day"),
        (date(year, 12, 26), "St Stephen's Day"),
    ]
    holidays: dict[date, str] = {}
    for day, name in named:
        holidays[day] = f"{holidays[day]} and {name}" if day in holidays else name
    return MappingProxyType(dict(sorted(holidays.items())))
