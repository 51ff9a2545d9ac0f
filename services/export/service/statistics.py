"""Statistics for service development, as the API answers them: the registers asked for, the period of whole
completed weeks, the count and its suppression (services.export.statistics has the rule)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.export.statistics import STATISTICS_REGISTERS, Period, Statistics, period, query_cells, suppress
from shared.app import Caller
from shared.audit.chain import Action
from shared.platform.errors import ApiError
from shared.policy.registry import PolicyRegistry


def _registers(policies: PolicyRegistry, register: str | None) -> list[str]:
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


async def statistics(
    session: AsyncSession,
    caller: Caller,
    *,
    policies: PolicyRegistry,
    register: str | None,
    first: date | None,
    last: date | None,
) -> tuple[Period, Statistics]:
    """The published statistics of `register` (None: every register that allows them) from `first`'s week to
    `last`'s; every call is audited as a read of ``statistics``, with no object ids."""
    if first is not None and last is not None and last < first:
        raise ApiError.field(422, "to", "is before from")
    registers = _registers(policies, register)
    within = period(first, last, caller.now())
    cells = await query_cells(session, registers=registers, within=within)
    await caller.audit(session, Action.READ, "statistics")
    return within, suppress(cells)
