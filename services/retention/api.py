"""Retention's HTTP routes: holds, a contact's schedule with the reason each part is kept, the forecast of
upcoming deletions, certificates of deletion (JSON or CSV), and the policies with their versions.

Who may call each route is in shared/security/authorization.yaml; every call is audited.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.retention.holds import holds_on_contact, is_active, lift_hold, place_hold
from services.retention.models import Certificate, ContactFacts, Hold, ScheduleItem
from services.retention.rules import describe_period
from services.retention.schedule import case_ref
from services.retention.schemas import (
    CertificateList,
    CertificateRead,
    ContactScheduleRead,
    ForecastDay,
    ForecastRead,
    HoldCreate,
    HoldList,
    HoldRead,
    PolicyList,
    PolicyRead,
    PolicyVersionRead,
    ScheduleEntryRead,
)
from shared.app import runtime
from shared.audit.chain import Action
from shared.audit.log import actor_ref, record
from shared.contracts.identifiers import IdentifierError, normalise_identifier
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.policy.registry import PolicyRegistry
from shared.security.access import authorize
from shared.security.auth import Principal

SERVICE = "retention"
router = APIRouter(prefix="/v1", tags=["retention"])
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]
RegisterQuery = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2200, 12, 31)
MAX_FORECAST_DAYS = 400
MAX_CERTIFICATES = 10_000


def _blind_index(request: Request) -> BlindIndex:
    index: BlindIndex = request.app.state.blind_index
    return index


def _policies(request: Request) -> PolicyRegistry:
    policies: PolicyRegistry = request.app.state.policies
    return policies


async def _audit(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    action: Action,
    object_type: str,
    object_ids: list[UUID],
) -> None:
    await record(
        session,
        actor=actor_ref(_blind_index(request), principal.subject),
        role=principal.role.value,
        action=action,
        object_type=object_type,
        object_ids=object_ids,
        service=SERVICE,
        occurred_at=runtime(request).clock.now(),
    )


def _check_register(request: Request, register: str | None) -> None:
    if register is not None and register not in _policies(request):
        raise ApiError.field(422, "register", "unknown register")


def _day(field: str, value: str | None) -> date | None:
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


def _hold_read(hold: Hold, now: datetime) -> HoldRead:
    return HoldRead(
        hold_id=hold.hold_id,
        scope=hold.scope,
        register_id=hold.register,
        reason=hold.reason,
        legal_reference=hold.legal_reference,
        placed_at=hold.placed_at,
        ends_on=hold.ends_on,
        lifted_at=hold.lifted_at,
        active=is_active(hold, now),
    )


# -- holds ------------------------------------------------------------------------------------------------


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldRead,
    summary="Place a legal hold on a contact, a case, a subject or a register",
    openapi_extra=json_body_openapi(HoldCreate),
    responses={
        201: {
            "description": "Placed; nothing it covers is deleted until it is lifted or ends",
            "links": {
                "LiftHold": {
                    "operationRef": "#/paths/~1v1~1holds~1{hold_id}~1lift/post",
                    "parameters": {"hold_id": "$response.body#/hold_id"},
                }
            },
        },
        **problem_responses(401, 403, 413, 415, 422),
    },
)
async def create_hold(request: Request, principal: Authorized) -> HoldRead:
    body = await json_body(request, HoldCreate)
    _check_register(request, body.register_id)
    blind_index = _blind_index(request)
    if body.scope == "contact":
        assert body.register_id is not None and body.contact_id is not None
        target = str(blind_index.pseudonym("contact", body.register_id, body.contact_id))
    elif body.scope == "case":
        assert body.register_id is not None and body.case_number is not None
        target = case_ref(blind_index, body.register_id, body.case_number)
    elif body.scope == "subject":
        assert body.subject is not None
        try:
            normalised = normalise_identifier(body.subject.kind, body.subject.value)
        except IdentifierError as exc:
            raise ApiError.field(422, "subject.value", str(exc)) from None
        target = blind_index.digest(body.subject.kind, normalised).hex()
    else:
        assert body.register_id is not None
        target = body.register_id
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session, session.begin():
        hold = await place_hold(
            session,
            scope=body.scope,
            target=target,
            register=body.register_id,
            reason=body.reason,
            legal_reference=body.legal_reference,
            ends_on=body.ends_on,
            placed_by=actor_ref(blind_index, principal.subject),
            role=principal.role.value,
            now=now,
        )
        return _hold_read(hold, now)


@router.get(
    "/holds",
    response_model=HoldList,
    summary="Holds, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_holds(
    request: Request, principal: Authorized, active: Annotated[bool | None, Query()] = None
) -> HoldList:
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session, session.begin():
        holds = list(
            (await session.scalars(select(Hold).order_by(Hold.hold_number.desc()).limit(1000))).all()
        )
        await _audit(request, session, principal, Action.SEARCH, "hold", [])
    reads = [_hold_read(hold, now) for hold in holds]
    return HoldList(holds=[read for read in reads if active is None or read.active is active])


HoldIdPath = Annotated[str, Path(pattern=r"^H-[1-9][0-9]{0,17}$", description="e.g. H-12")]


@router.post(
    "/holds/{hold_id}/lift",
    response_model=HoldRead,
    summary="Lift a hold; what it kept goes at the next sweep if due",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def lift(request: Request, hold_id: HoldIdPath, principal: Authorized) -> HoldRead:
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session, session.begin():
        hold = await session.get(Hold, int(hold_id.removeprefix("H-")), with_for_update=True)
        if hold is None:
            raise ApiError.field(404, "hold_id", "no such hold", title="Hold not found")
        if hold.lifted_at is not None:
            raise ApiError.field(409, "hold_id", "the hold was already lifted", title="Already lifted")
        await lift_hold(
            session,
            hold,
            lifted_by=actor_ref(_blind_index(request), principal.subject),
            role=principal.role.value,
            now=now,
        )
        return _hold_read(hold, now)


# -- a contact's schedule -----------------------------------------------------------------------------------


@router.get(
    "/contacts/{contact_id}/schedule",
    response_model=ContactScheduleRead,
    summary="When each part of a contact goes, and why it is still kept",
    responses=problem_responses(401, 403, 404, 422),
)
async def contact_schedule(
    request: Request,
    principal: Authorized,
    contact_id: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@+=-]+$")],
    register: RegisterQuery = None,
) -> ContactScheduleRead:
    _check_register(request, register)
    registers = [register] if register else _policies(request).registers()
    refs = [_blind_index(request).pseudonym("contact", r, contact_id) for r in registers]
    rt = runtime(request)
    now = rt.clock.now()
    async with rt.sessionmaker() as session, session.begin():
        facts = list(
            (await session.scalars(select(ContactFacts).where(ContactFacts.contact_ref.in_(refs)))).all()
        )
        if len(facts) != 1:
            if len(facts) > 1:
                raise ApiError.field(409, "register", "the contact id exists in several registers; name one")
            raise ApiError.field(404, "contact_id", "no such contact", title="Contact not found")
        ref = facts[0].contact_ref
        items = (
            await session.scalars(
                select(ScheduleItem)
                .where(ScheduleItem.contact_ref == ref)
                .order_by(ScheduleItem.due_at.nulls_last(), ScheduleItem.artifact_class, ScheduleItem.item)
            )
        ).all()
        holds = [hold.hold_id for hold in await holds_on_contact(session, ref, now)]
        await _audit(request, session, principal, Action.READ, "schedule", [ref])
    entries = []
    for item in items:
        if item.state == "done":
            state = "done"
        elif item.due_at is None:
            state = "waiting"
        elif holds:
            state = "held"
        else:
            state = "scheduled"
        reason = item.reason if state != "held" else f"held by {', '.join(holds)}; {item.reason}"
        entries.append(
            ScheduleEntryRead(
                artifact_class=item.artifact_class,
                item=item.item,
                action=item.action,
                state=state,
                due_at=item.due_at,
                reason=reason,
                held_by=holds if state == "held" else [],
            )
        )
    return ContactScheduleRead(contact_ref=ref, register_id=facts[0].register, entries=entries)


# -- forecast ------------------------------------------------------------------------------------------------


@router.get(
    "/forecast",
    response_model=ForecastRead,
    summary="Upcoming deletions and redactions per day and class (Helsinki days)",
    responses=problem_responses(401, 403, 422),
)
async def forecast(
    request: Request,
    principal: Authorized,
    from_text: Annotated[str, Query(alias="from", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")],
    to_text: Annotated[str, Query(alias="to", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")],
    register: RegisterQuery = None,
) -> ForecastRead:
    _check_register(request, register)
    from_day, to_day = _day("from", from_text), _day("to", to_text)
    assert from_day is not None and to_day is not None
    if to_day < from_day:
        raise ApiError.field(422, "to", "must not be before from")
    if (to_day - from_day).days > MAX_FORECAST_DAYS:
        raise ApiError.field(422, "to", f"at most {MAX_FORECAST_DAYS} days after from")
    start = datetime.combine(from_day, time(), tzinfo=HELSINKI)
    end = datetime.combine(to_day + timedelta(days=1), time(), tzinfo=HELSINKI)
    local_day = func.date(func.timezone("Europe/Helsinki", ScheduleItem.due_at))
    query = (
        select(local_day, ScheduleItem.artifact_class, func.count())
        .where(ScheduleItem.state == "scheduled", ScheduleItem.due_at >= start, ScheduleItem.due_at < end)
        .group_by(local_day, ScheduleItem.artifact_class)
        .order_by(local_day, ScheduleItem.artifact_class)
    )
    if register:
        query = query.where(ScheduleItem.register == register)
    rt = runtime(request)
    async with rt.sessionmaker() as session, session.begin():
        rows = (await session.execute(query)).all()
        await _audit(request, session, principal, Action.SEARCH, "schedule", [])
    return ForecastRead(
        register_id=register,
        from_day=from_day,
        to_day=to_day,
        days=[ForecastDay(day=day, artifact_class=cls, items=count) for day, cls, count in rows],
    )


# -- certificates --------------------------------------------------------------------------------------------

_CSV_FIELDS = [field.alias or name for name, field in CertificateRead.model_fields.items()]


@router.get(
    "/certificates",
    response_model=CertificateList,
    summary="Certificates of deletion, as JSON or CSV (format=csv)",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 422),
    },
)
async def certificates(
    request: Request,
    principal: Authorized,
    register: RegisterQuery = None,
    from_text: Annotated[str | None, Query(alias="from", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] = None,
    to_text: Annotated[str | None, Query(alias="to", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] = None,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    _check_register(request, register)
    from_day, to_day = _day("from", from_text), _day("to", to_text)
    query = (
        select(Certificate).order_by(Certificate.done_at, Certificate.certificate_id).limit(MAX_CERTIFICATES)
    )
    if register:
        query = query.where(Certificate.register == register)
    if from_day:
        query = query.where(Certificate.done_at >= datetime.combine(from_day, time(), tzinfo=HELSINKI))
    if to_day:
        query = query.where(
            Certificate.done_at < datetime.combine(to_day + timedelta(days=1), time(), tzinfo=HELSINKI)
        )
    rt = runtime(request)
    async with rt.sessionmaker() as session, session.begin():
        rows = (await session.scalars(query)).all()
        await _audit(request, session, principal, Action.SEARCH, "certificate", [])
    reads = [CertificateRead.model_validate(row, from_attributes=True) for row in rows]
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        for read in reads:
            writer.writerow(read.model_dump(mode="json"))
        return Response(buffer.getvalue(), media_type="text/csv")
    return CertificateList(certificates=reads)


# -- policies ------------------------------------------------------------------------------------------------


@router.get(
    "/policies",
    response_model=PolicyList,
    summary="Registers and their policy versions",
    responses=problem_responses(401, 403),
)
async def policies(request: Request, principal: Authorized) -> PolicyList:
    registry = _policies(request)
    return PolicyList(
        policies=[
            PolicyRead(
                register_id=register,
                versions=[
                    PolicyVersionRead(
                        version=version.version,
                        effective_from=version.effective_from,
                        retention=[
                            f"{rule.artifact_class.value}: {rule.action.value} {describe_period(rule.period)} "
                            f"from {rule.trigger.value}"
                            for rule in version.retention
                        ],
                    )
                    for version in registry.get(register).versions
                ],
            )
            for register in registry.registers()
        ]
    )
