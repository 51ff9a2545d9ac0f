"""Statistics for service development: contacts and their durations per register, channel, service and week,
with small cells suppressed so that no individual can be identified.

What is counted. Every contact the record store keeps (read through shared.recordstore.lending) of a register
whose privacy notice names statistics or the development of its customer service as a purpose
(:data:`STATISTICS_REGISTERS`), except contacts whose processing is restricted (GDPR Art. 18: a restricted
contact may only be stored, and counting it is processing). Only clear metadata is read: register, channel,
direction and the start and end times. No sealed column is opened, and no contact id, agent id, phone number
or any other identifier is read or leaves.
Only contacts still kept are counted: once retention has deleted everything of a contact, its row is gone, so
weeks older than a register's retention periods shrink and then empty (a long series must be kept from
earlier exports).

The cells. One cell per register, ISO week of the contact's start on the Helsinki calendar (``2026-W47``,
Monday to Sunday in Europe/Helsinki), channel and service, with:

- ``contacts``: how many contacts started in the cell;
- ``ended``: how many of them have a recorded end (calls and chats; other channels have none), which the
  durations cover;
- ``duration_total_seconds`` and ``duration_median_seconds``: the total and the median of (end - start),
  whole seconds, over those ended contacts.

Per register and week there is also a total of contacts over all its cells.

"Service". What an HSY analyst would first ask for is the line or topic a contact concerned (HSY's notice lists
"service the call concerns" among call data). Sailo keeps that only sealed with the contact's personal data
(``service_number`` of a call, the subject of a case, the survey id of an SMS survey), readable only under the
contact's data key, which statistics must not open. The one clear attribute that says something about the
service given is who started the contact, so ``service`` here is its direction:

- ``inbound`` or ``outbound``: the direction a call recorded (customer calling in; adviser calling out);
- ``inbound`` for channels only a customer can start: chat, chatbot, e-mail, identification;
- ``outbound`` for SMS surveys, which the service sends;
- ``unspecified`` for cases, and for a call whose start (and so its direction) never arrived.

A clear service attribute at intake (the called service line, a queue) would give finer cells; it is not kept
today, so it is not guessed at.

Suppression (threshold :data:`THRESHOLD`, 5). A cell of fewer than 5 contacts is suppressed: its counts and
durations are withheld (``null`` in JSON, ``..`` in CSV, the symbol Statistics Finland uses for confidential
data). Because the register-week total is published, withholding a single cell would let a reader subtract
the shown cells from the total and get it back; so within each register-week the suppressed cells, taken
together, must hide their members as one cell would: there must be at least two of them, together holding at
least 5 contacts, and more contacts than cells (or else every one of them would be known to hold exactly one).
Until they do, the smallest shown cell (ties by channel, then service) is suppressed as well (secondary
suppression). When no choice of cells can satisfy this, the total is withheld too; a total below 5 always is.
Suppressed cells are not told apart as primary or secondary: that would say which one is the small one.

Durations are published only for a cell that is shown and has at least 5 ended contacts, so a median or a
total is never one or a few people's call; otherwise ``ended`` and the durations are withheld. (The difference
``contacts - ended`` can be small: it counts contacts whose platform reported no end, a technical fact about
the recording of the contact, not about the customer.) The register-week total carries no durations, so no
duration can be recovered by subtraction either.

Against differencing between queries: a period always covers whole weeks (the ``from`` day is moved back to its
Monday, the ``to`` day forward to its Sunday), so two queries can never cut one week differently; and only
completed weeks are published (the current week is left out), so the cells do not grow from one query to
the next while contacts come in. The register filter selects whole register-weeks and changes no cell.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from shared.platform.clock import HELSINKI
from shared.recordstore.lending import contacts_by_week

__all__ = [
    "ALL",
    "CSV_COLUMNS",
    "FIRST_DAY",
    "HELSINKI",
    "STATISTICS_REGISTERS",
    "SUPPRESSED",
    "THRESHOLD",
    "Cell",
    "Period",
    "PublishedCell",
    "PublishedTotal",
    "Service",
    "Statistics",
    "period",
    "query_cells",
    "suppress",
    "to_csv",
]

THRESHOLD: Final = 5
"""The smallest number of contacts a published count may describe."""
FIRST_DAY: Final = date(1900, 1, 1)
"""A Monday before any register began: the earliest day a period starts."""
SUPPRESSED: Final = ".."
"""A withheld value in CSV (Statistics Finland's symbol for confidential data); an empty field is a value that
does not exist (no ended contact, so no duration)."""

STATISTICS_REGISTERS: Final = frozenset(
    {
        # "Statistics and reports in which no individual customer can be identified." / "Planning and
        # developing customer service."
        "hsy-customer-service",
        # "Statistics, such as the total number of customer-service events in a period."
        "dvv-personal-customer-service",
        # "Quality of PRH's telephone service and development of customer service." / "to study the service
        # level"
        "prh-customer-service",
        # "Recordings may be used in training to improve customer service and in developing the service."
        "statfi-chat",
    }
)
"""Registers whose privacy notice names statistics or the development of the customer service among its
purposes. PRH's register of beneficial-owner information requests is kept only to identify the requester, so
it is not counted."""

Service = Literal["inbound", "outbound", "unspecified"]
_DIRECTIONS: Final = ("inbound", "outbound")
_INBOUND_CHANNELS: Final = ("chat", "chatbot", "email", "identification")
_OUTBOUND_CHANNELS: Final = ("sms",)


@dataclass(frozen=True)
class Cell:
    """One cell as counted, before suppression."""

    register: str
    week: str
    channel: str
    service: str
    contacts: int
    ended: int
    duration_total_seconds: int | None
    duration_median_seconds: int | None


@dataclass(frozen=True)
class PublishedCell:
    """A cell as published: withheld values are None."""

    register: str
    week: str
    channel: str
    service: str
    contacts: int | None
    ended: int | None
    duration_total_seconds: int | None
    duration_median_seconds: int | None
    suppressed: bool


@dataclass(frozen=True)
class PublishedTotal:
    """A register-week's contacts over all its cells, as published."""

    register: str
    week: str
    contacts: int | None
    suppressed: bool


@dataclass(frozen=True)
class Statistics:
    cells: list[PublishedCell]
    totals: list[PublishedTotal]


# --- The period ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole weeks: from a Monday (None: from the beginning) to a Sunday, both days included."""

    first_day: date | None
    last_day: date

    @property
    def start(self) -> datetime | None:
        return None if self.first_day is None else _midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """The instant after the period: the Monday after its last day, 00:00 in Helsinki."""
        return _midnight(self.last_day + timedelta(days=1))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), HELSINKI)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def period(first: date | None, last: date | None, now: datetime) -> Period:
    """The whole completed weeks from ``first``'s week to ``last``'s week (Helsinki calendar).

    ``first`` moves back to its Monday and ``last`` forward to its Sunday, and the period ends at the latest
    with the last week completed before ``now``; it may be empty (``first_day`` after ``last_day``). Days
    before :data:`FIRST_DAY` count as that day (no register is that old).
    """
    last_completed = _monday(now.astimezone(HELSINKI).date()) - timedelta(days=1)
    if last is None or last >= last_completed:
        last_day = last_completed
    elif last < FIRST_DAY:
        last_day = FIRST_DAY - timedelta(days=1)
    else:
        last_day = _monday(last) + timedelta(days=6)
    return Period(None if first is None else _monday(max(first, FIRST_DAY)), last_day)


# --- Counting -----------------------------------------------------------------------------------------------


async def query_cells(session: AsyncSession, *, registers: Iterable[str], within: Period) -> list[Cell]:
    """Count the cells of ``registers`` in ``within``, restricted contacts left out; nothing suppressed yet."""
    counted = await contacts_by_week(
        session,
        registers=registers,
        start=within.start,
        end=within.end,
        timezone=HELSINKI.key,
        directions=_DIRECTIONS,
        services_by_channel=((_INBOUND_CHANNELS, "inbound"), (_OUTBOUND_CHANNELS, "outbound")),
        otherwise="unspecified",
    )
    return [
        Cell(
            register=week.register,
            week=week.week,
            channel=week.channel,
            service=week.service,
            contacts=week.contacts,
            ended=week.ended,
            duration_total_seconds=week.duration_total_seconds,
            duration_median_seconds=week.duration_median_seconds,
        )
        for week in counted
    ]


# --- Suppression --------------------------------------------------------------------------------------------


def _protected(withheld: Sequence[Cell], threshold: int) -> bool:
    """Whether withheld cells, whose sum a reader gets from the total, still hide each one's count."""
    if not withheld:
        return True
    together = sum(cell.contacts for cell in withheld)
    return len(withheld) >= 2 and together >= threshold and together > len(withheld)


def _group(cells: Sequence[Cell], threshold: int) -> tuple[set[int], bool]:
    """Indices of the cells to withhold in one register-week, and whether the total is withheld."""
    withheld = {i for i, cell in enumerate(cells) if cell.contacts < threshold}
    if sum(cell.contacts for cell in cells) < threshold:
        return set(range(len(cells))), True
    # Next-smallest first; ties by channel and service, so the same data always withholds the same cells.
    shown = sorted(
        (i for i in range(len(cells)) if i not in withheld),
        key=lambda i: (cells[i].contacts, cells[i].channel, cells[i].service),
    )
    while not _protected([cells[i] for i in withheld], threshold) and shown:
        withheld.add(shown.pop(0))
    return withheld, not _protected([cells[i] for i in withheld], threshold)


def suppress(cells: Iterable[Cell], threshold: int = THRESHOLD) -> Statistics:
    """Publishable statistics from counted cells: primary and secondary suppression, per register-week totals.

    See the module's docstring for the rule. Pure: the same cells always give the same answer.
    """
    groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.register, cell.week)].append(cell)
    published: list[PublishedCell] = []
    totals: list[PublishedTotal] = []
    for (register, week), members in sorted(groups.items()):
        members.sort(key=lambda cell: (cell.channel, cell.service))
        withheld, total_withheld = _group(members, threshold)
        for i, cell in enumerate(members):
            if i in withheld:
                published.append(
                    PublishedCell(
                        cell.register, cell.week, cell.channel, cell.service, None, None, None, None, True
                    )
                )
                continue
            timed = cell.ended >= threshold
            published.append(
                PublishedCell(
                    register=cell.register,
                    week=cell.week,
                    channel=cell.channel,
                    service=cell.service,
                    contacts=cell.contacts,
                    ended=cell.ended if timed or cell.ended == 0 else None,
                    duration_total_seconds=cell.duration_total_seconds if timed else None,
                    duration_median_seconds=cell.duration_median_seconds if timed else None,
                    suppressed=False,
                )
            )
        total = sum(cell.contacts for cell in members)
        totals.append(PublishedTotal(register, week, None if total_withheld else total, total_withheld))
    return Statistics(published, totals)


# --- CSV ----------------------------------------------------------------------------------------------------

CSV_COLUMNS: Final = (
    "register",
    "week",
    "channel",
    "service",
    "contacts",
    "ended",
    "duration_total_seconds",
    "duration_median_seconds",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
ALL: Final = "all"
"""Channel and service of a register-week's total row in CSV."""


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _count(value: int | None, suppressed: bool) -> str:
    return SUPPRESSED if suppressed else _cell(value)


def to_csv(statistics: Statistics) -> str:
    """One row per cell, then each register-week's total (channel and service ``all``, no durations), in
    register and week order; withheld values are ``..``, values that do not exist are empty."""
    rows: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
    for cell in statistics.cells:
        timed = cell.ended is not None and cell.ended > 0
        withheld = cell.suppressed or cell.ended is None
        rows[(cell.register, cell.week)].append(
            [
                _cell(cell.register),
                _cell(cell.week),
                _cell(cell.channel),
                _cell(cell.service),
                _count(cell.contacts, cell.suppressed),
                _count(cell.ended, withheld),
                _count(cell.duration_total_seconds, withheld) if withheld or timed else "",
                _count(cell.duration_median_seconds, withheld) if withheld or timed else "",
            ]
        )
    for total in statistics.totals:
        rows[(total.register, total.week)].append(
            [
                _cell(total.register),
                _cell(total.week),
                ALL,
                ALL,
                _count(total.contacts, total.suppressed),
                "",
                "",
                "",
            ]
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for key in sorted(rows):
        writer.writerows(rows[key])
    return buffer.getvalue()
