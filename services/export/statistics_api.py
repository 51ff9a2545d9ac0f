"""Export's statistics route: contacts and durations per register, channel, service and week, small cells
suppressed (services/export/statistics.py has the rule), as JSON or CSV.

Who may call it is in shared/security/authorization.yaml. The answer holds counts and durations only, never an id of a
contact, an agent or a customer; every call is audited (a read of ``statistics``, no object ids).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.export.statistics import (
    STATISTICS_REGISTERS,
    THRESHOLD,
    Service,
    period,
    query_cells,
    suppress,
    to_csv,
)
from shared.app import runtime
from shared.audit.chain import Action
from shared.audit.log import actor_ref, record
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.platform.http import problem_responses
from shared.policy.registry import PolicyRegistry
from shared.security.access import authorize
from shared.security.auth import Principal

SERVICE = "export"
router = APIRouter(prefix="/v1", tags=["statistics"])
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Days as the calendar writes them: a plain date parser would also take a number as seconds since 1970.
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_WEEK = r"^[0-9]{4}-W[0-9]{2}$"
_REGISTERS = ", ".join(sorted(STATISTICS_REGISTERS))

Count = Annotated[
    int | None, Field(ge=0, description=f"null when withheld (fewer than {THRESHOLD} contacts)")
]
Seconds = Annotated[int | None, Field(ge=0)]


class _WithRegister(BaseModel):
    # `register` is the JSON name; pydantic models already have a `register` attribute (from abc).
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    register_id: str = Field(alias="register")


class StatisticsCell(_WithRegister):
    week: str = Field(pattern=_WEEK, description="ISO week on the Helsinki calendar, e.g. 2026-W47")
    channel: str
    service: Service = Field(description="who started the contact: inbound, outbound or unspecified")
    contacts: Count
    ended: Count = Field(description="contacts with a recorded end, which the durations cover")
    duration_total_seconds: Seconds
    duration_median_seconds: Seconds
    suppressed: bool = Field(description="the cell's counts are withheld (small, or to protect a small one)")


class StatisticsTotal(_WithRegister):
    week: str = Field(pattern=_WEEK)
    contacts: Count
    suppressed: bool


class StatisticsReport(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    threshold: int = Field(description="the fewest contacts a published count describes")
    register_id: str | None = Field(alias="register", description="the register asked for (null: all)")
    first_day: date | None = Field(description="Monday the period starts (null: from the first contact)")
    last_day: date = Field(description="Sunday the period ends: at the latest, the last completed week's")
    cells: list[StatisticsCell]
    totals: list[StatisticsTotal]


def _day(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None


def _registers(request: Request, register: str | None) -> list[str]:
    policies: PolicyRegistry = request.app.state.policies
    available = sorted(STATISTICS_REGISTERS & set(policies.registers()))
    if register is None:
        return available
    if register not in policies:
        raise ApiError.field(422, "register", "unknown register")
    if register not in available:
        raise ApiError.field(
            422, "register", "the register's privacy notice does not name statistics or service development"
        )
    return [register]


def _wants_csv(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "csv"
    accept = request.headers.get("accept", "").lower()
    return "text/csv" in accept and "application/json" not in accept


@router.get(
    "/statistics",
    response_model=StatisticsReport,
    summary="Contacts and durations per register, channel, service and week; small cells suppressed",
    description=(
        f"Completed weeks on the Helsinki calendar. A cell of fewer than {THRESHOLD} contacts is withheld, and "
        "so is the next-smallest cell of its register-week where the published total would give it back; "
        f"durations only where at least {THRESHOLD} contacts ended. Restricted contacts (GDPR Art. 18) are "
        f"not counted. Registers: {_REGISTERS}. CSV with format=csv or Accept: text/csv (withheld values "
        "'..'; each register-week's total as channel and service 'all')."
    ),
    responses={
        200: {
            "description": "The statistics",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 422),
    },
)
async def get_statistics(
    request: Request,
    principal: Authorized,
    register: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$", description=f"one register: {_REGISTERS}"),
    ] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", pattern=_DAY, description="first day (YYYY-MM-DD); its whole week is included"),
    ] = None,
    to: Annotated[
        str | None,
        Query(pattern=_DAY, description="last day (YYYY-MM-DD); its whole week is included"),
    ] = None,
    format_: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="json (the default) or csv"),
    ] = None,
) -> StatisticsReport | Response:
    first, last = _day("from", from_), _day("to", to)
    if first is not None and last is not None and last < first:
        raise ApiError.field(422, "to", "is before from")
    registers = _registers(request, register)
    rt = runtime(request)
    now = rt.clock.now()
    within = period(first, last, now)
    blind_index: BlindIndex = request.app.state.blind_index
    async with rt.sessionmaker() as session:
        cells = await query_cells(session, registers=registers, within=within)
        await record(
            session,
            actor=actor_ref(blind_index, principal.subject),
            role=principal.role.value,
            action=Action.READ,
            object_type="statistics",
            service=SERVICE,
            occurred_at=now,
        )
        await session.commit()
    statistics = suppress(cells)
    if _wants_csv(request, format_):
        return Response(
            to_csv(statistics).encode("utf-8"),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="sailo-statistics.csv"'},
        )
    return StatisticsReport(
        threshold=THRESHOLD,
        register_id=register,
        first_day=within.first_day,
        last_day=within.last_day,
        cells=[StatisticsCell.model_validate(cell, from_attributes=True) for cell in statistics.cells],
        totals=[StatisticsTotal.model_validate(total, from_attributes=True) for total in statistics.totals],
    )
