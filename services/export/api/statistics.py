"""Export's statistics route: contacts and durations per register, channel, service and week, small cells
suppressed (services/export/statistics.py has the rule), as JSON or CSV.

The answer holds counts and durations only, never an id of a contact, an agent or a customer; every call is
audited (a read of ``statistics``, no object ids).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from services.export.api.deps import CallerDep
from services.export.schemas import (
    DAY_PATTERN,
    STATISTICS_REGISTER_NAMES,
    StatisticsCell,
    StatisticsReport,
    StatisticsTotal,
)
from services.export.service import statistics as service
from services.export.statistics import THRESHOLD, to_csv
from shared.app import SessionDep
from shared.platform.errors import ApiError
from shared.platform.http import problem_responses

router = APIRouter(prefix="/v1", tags=["statistics"])

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _day(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None


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
        f"not counted. Registers: {STATISTICS_REGISTER_NAMES}. CSV with format=csv or Accept: text/csv "
        "(withheld values '..'; each register-week's total as channel and service 'all')."
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
    session: SessionDep,
    caller: CallerDep,
    register: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z0-9][a-z0-9-]*$",
            description=f"one register: {STATISTICS_REGISTER_NAMES}",
        ),
    ] = None,
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            pattern=DAY_PATTERN,
            description="first day (YYYY-MM-DD); its whole week is included",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(pattern=DAY_PATTERN, description="last day (YYYY-MM-DD); its whole week is included"),
    ] = None,
    format_: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="json (the default) or csv"),
    ] = None,
) -> StatisticsReport | Response:
    within, statistics = await service.statistics(
        session,
        caller,
        policies=request.app.state.policies,
        register=register,
        first=_day("from", from_),
        last=_day("to", to),
    )
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
