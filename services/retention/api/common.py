"""What every retention route shares: its router settings, the caller, and the parsing of common parameters."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from shared.app import Caller, caller_of
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry
from shared.security.access import authorize

SERVICE = "retention"
CallerDep = Annotated[Caller, Depends(caller_of(authorize(SERVICE)))]
RegisterQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2200, 12, 31)


def new_router() -> APIRouter:
    return APIRouter(prefix="/v1", tags=["retention"])


def _blind_index(request: Request) -> BlindIndex:
    index: BlindIndex = request.app.state.blind_index
    return index


def _policies(request: Request) -> PolicyRegistry:
    policies: PolicyRegistry = request.app.state.policies
    return policies


BlindIndexDep = Annotated[BlindIndex, Depends(_blind_index)]
PoliciesDep = Annotated[PolicyRegistry, Depends(_policies)]


def check_register(policies: PolicyRegistry, register: str | None) -> None:
    if register is not None and register not in policies:
        raise ApiError.field(422, "register", "unknown register")


def parse_day(field: str, value: str | None) -> date | None:
    """A query day, strictly YYYY-MM-DD (a bare number is not a day) and within the years Sailo can hold."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ApiError.field(422, field, f"must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return day
