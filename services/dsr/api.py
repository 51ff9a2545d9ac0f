"""DSR's HTTP routes: a caseworker's queue of data-subject requests and every step of one.

Routes parse, call services.dsr.service / answers, and commit: a step, its audit entry and its event are one
transaction. Who may call each route is in shared/security/authorization.yaml.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr import letters, service
from services.dsr.answers import answer, package_key_context
from services.dsr.models import Candidate, DataSubjectRequest, Package
from services.dsr.package import open_package
from services.dsr.rectification import Changes, Correction
from services.dsr.rights import ConditionUnanswered
from services.dsr.schemas import (
    AnswerCreate,
    CandidateDecision,
    CandidateList,
    CandidateRead,
    ExtensionCreate,
    IdentityVerification,
    PackageRead,
    RequestCreate,
    RequestDetails,
    RequesterIdentifier,
    RequesterRead,
    RequestList,
    RequestRead,
    RestrictionLift,
    StatusChange,
    StepWithLetter,
)
from shared.app import runtime
from shared.audit.chain import Action
from shared.audit.log import actor_ref, record, record_not_found
from shared.platform.clock import HELSINKI
from shared.platform.crypto import BlindIndex, unwrap_data_key
from shared.platform.errors import ApiError
from shared.platform.http import json_body, json_body_openapi, problem_responses
from shared.policy.model import RightName
from shared.policy.registry import PolicyRegistry
from shared.security.access import authorize
from shared.security.auth import Principal
from shared.storage.blobstore import BlobStore

SERVICE = "dsr"
router = APIRouter(prefix="/v1", tags=["requests"])
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]


def _state(request: Request) -> Any:
    return request.app.state


def _actor(request: Request, principal: Principal) -> UUID:
    blind_index: BlindIndex = _state(request).blind_index
    return actor_ref(blind_index, principal.subject)


def _now(request: Request) -> datetime:
    return runtime(request).clock.now()


async def _latest_packages(session: AsyncSession, request_ids: list[UUID]) -> dict[UUID, Package]:
    """Each request's newest access package, for a whole page of requests in one query."""
    rows = await session.scalars(
        select(Package).where(Package.request_id.in_(request_ids)).order_by(Package.created_at)
    )
    return {package.request_id: package for package in rows}


async def _read(
    session: AsyncSession, dsr: DataSubjectRequest, now: datetime, packages: dict[UUID, Package] | None = None
) -> RequestRead:
    if packages is None:
        packages = await _latest_packages(session, [dsr.request_id])
    package = packages.get(dsr.request_id)
    overdue = dsr.status in service.OPEN_STATUSES and now.astimezone(HELSINKI).date() > dsr.last_day
    return RequestRead(
        request_id=dsr.request_id,
        case_number=dsr.case_number,
        request_type=dsr.request_type,
        registers=dsr.registers,
        status=dsr.status,
        received_at=dsr.received_at,
        last_day=dsr.last_day,
        overdue=overdue,
        extension_months=dsr.extension_months,
        extension_reasons=dsr.extension_reasons,
        identity_method=dsr.identity_method,
        identity_verified_at=dsr.identity_verified_at,
        restriction_ground=dsr.restriction_ground,
        restriction_lifted_at=dsr.restriction_lifted_at,
        decisions=dsr.decisions,
        closed_at=dsr.closed_at,
        package=PackageRead.model_validate(package, from_attributes=True) if package else None,
    )


async def _audit_read(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    dsr: DataSubjectRequest,
    now: datetime,
    *,
    reason: str,
) -> None:
    await service.audit_step(
        session,
        dsr,
        by=_actor(request, principal),
        role=principal.role.value,
        now=now,
        reason=reason,
        action=Action.READ,
    )


async def _load(
    request: Request, session: AsyncSession, principal: Principal, request_id: UUID
) -> DataSubjectRequest:
    """The request, locked for this step; a missing one is audited as a failed read and answered 404."""
    dsr = await session.get(DataSubjectRequest, request_id, with_for_update=True)
    if dsr is None:
        await session.rollback()
        rt = runtime(request)
        await record_not_found(
            rt.sessionmaker,
            actor=_actor(request, principal),
            role=principal.role.value,
            object_type="dsr.request",
            service=SERVICE,
            occurred_at=rt.clock.now(),
        )
        raise ApiError.field(404, "request_id", "no such request", title="Request not found")
    return dsr


def _refused(exc: service.StepRefused) -> ApiError:
    return ApiError.field(
        exc.status, exc.field, exc.reason, title="Step not allowed" if exc.status == 409 else None
    )


Step = Callable[[AsyncSession, DataSubjectRequest, UUID, str, datetime], Awaitable[None]]


async def _step(request: Request, principal: Principal, request_id: UUID, act: Step) -> RequestRead:
    """Load and lock the request, take one step (actor, role and time given), commit, show the request."""
    now = _now(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        try:
            await act(session, dsr, _actor(request, principal), principal.role.value, now)
        except service.StepRefused as exc:
            raise _refused(exc) from None
        await session.commit()
        return await _read(session, dsr, now)


# -- the queue --------------------------------------------------------------------------------------------


@router.post(
    "/requests",
    status_code=201,
    response_model=RequestRead,
    summary="Register a data-subject request as it arrived",
    responses={
        201: {
            "description": "The request, with its case number and statutory last day",
            "links": {
                "GetRequest": {
                    "operationRef": "#/paths/~1v1~1requests~1{request_id}/get",
                    "parameters": {"request_id": "$response.body#/request_id"},
                }
            },
        },
        **problem_responses(401, 403, 409, 413, 415, 422),
    },
    openapi_extra=json_body_openapi(RequestCreate),
)
async def create_request(request: Request, principal: Authorized) -> RequestRead:
    body = await json_body(request, RequestCreate)
    now = _now(request)
    state = _state(request)
    async with runtime(request).sessionmaker() as session:
        try:
            dsr = await service.register_request(
                session,
                keystore=state.keystore,
                policies=state.policies,
                request_type=RightName(body.request_type),
                registers=body.registers,
                requester=[service.Identifier(i.kind, i.value) for i in body.requester],
                details=body.details.model_dump(exclude_none=True) if body.details else None,
                restriction_ground=body.restriction_ground,
                received_at=body.received_at or now,
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            status = 409 if exc.field == "status" else 422
            raise ApiError.field(status, exc.field, exc.reason) from None
        await session.commit()
        return await _read(session, dsr, now)


# Days as the calendar writes them: a plain date parser would also take a number as seconds since 1970.
_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _day(field: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError.field(422, field, "not a calendar day (YYYY-MM-DD)") from None


def _cursor(value: str | None) -> tuple[date, str] | None:
    if value is None:
        return None
    try:
        day, _, case_number = base64.urlsafe_b64decode(value.encode()).decode().partition("|")
        return date.fromisoformat(day), case_number
    except (ValueError, UnicodeDecodeError):
        raise ApiError.field(422, "cursor", "not a cursor this API gave") from None


@router.get(
    "/requests",
    response_model=RequestList,
    summary="The queue: requests by last day, filtered by status, type and due date",
    responses=problem_responses(401, 403, 422),
)
async def list_requests(
    request: Request,
    principal: Authorized,
    status: Annotated[str | None, Query(max_length=24, pattern=r"^[a-z_]+$")] = None,
    request_type: Annotated[str | None, Query(max_length=20, pattern=r"^[a-z_]+$")] = None,
    due_before: Annotated[
        str | None, Query(description="last day on or before (YYYY-MM-DD)", pattern=_DAY)
    ] = None,
    due_after: Annotated[
        str | None, Query(description="last day on or after (YYYY-MM-DD)", pattern=_DAY)
    ] = None,
    open_only: Annotated[bool, Query(description="only requests still to be answered")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RequestList:
    after = _cursor(cursor)
    query = select(DataSubjectRequest)
    if status is not None:
        query = query.where(DataSubjectRequest.status == status)
    if request_type is not None:
        query = query.where(DataSubjectRequest.request_type == request_type)
    if due_before is not None:
        query = query.where(DataSubjectRequest.last_day <= _day("due_before", due_before))
    if due_after is not None:
        query = query.where(DataSubjectRequest.last_day >= _day("due_after", due_after))
    if open_only:
        query = query.where(DataSubjectRequest.status.in_(sorted(service.OPEN_STATUSES)))
    if after is not None:
        query = query.where(
            tuple_(DataSubjectRequest.last_day, DataSubjectRequest.case_number) > tuple_(*after)
        )
    query = query.order_by(DataSubjectRequest.last_day, DataSubjectRequest.case_number).limit(limit + 1)
    now = _now(request)
    async with runtime(request).sessionmaker() as session:
        rows = list((await session.scalars(query)).all())
        page, more = rows[:limit], len(rows) > limit
        await record(
            session,
            actor=_actor(request, principal),
            role=principal.role.value,
            action=Action.SEARCH,
            object_type="dsr.request",
            object_ids=[r.request_id for r in page][:100],
            service=SERVICE,
            occurred_at=now,
        )
        await session.commit()
        packages = await _latest_packages(session, [r.request_id for r in page])
        items = [await _read(session, r, now, packages) for r in page]
    next_cursor = (
        base64.urlsafe_b64encode(f"{page[-1].last_day.isoformat()}|{page[-1].case_number}".encode()).decode()
        if more and page
        else None
    )
    return RequestList(requests=items, next_cursor=next_cursor)


@router.get(
    "/requests/{request_id}",
    response_model=RequestRead,
    summary="One request: status, last day, decisions with their legal grounds",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_request(request: Request, request_id: UUID, principal: Authorized) -> RequestRead:
    now = _now(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        await _audit_read(request, session, principal, dsr, now, reason="viewed")
        await session.commit()
        return await _read(session, dsr, now)


@router.get(
    "/requests/{request_id}/requester",
    response_model=RequesterRead,
    summary="The requester's identifiers and own words (the field and change of a rectification), unsealed",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_requester(request: Request, request_id: UUID, principal: Authorized) -> RequesterRead:
    now = _now(request)
    state = _state(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        identifiers = await service.requester_identifiers(session, state.keystore, dsr)
        details = await service.request_details(session, state.keystore, dsr)
        await _audit_read(request, session, principal, dsr, now, reason="requester_viewed")
        await session.commit()
    return RequesterRead(
        requester=[RequesterIdentifier(kind=i.kind, value=i.value) for i in identifiers],
        details=RequestDetails(**details) if details else None,
    )


# -- the steps --------------------------------------------------------------------------------------------


@router.post(
    "/requests/{request_id}/identity",
    response_model=RequestRead,
    summary="Record how the requester's identity was proven",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(IdentityVerification),
)
async def verify_identity(request: Request, request_id: UUID, principal: Authorized) -> RequestRead:
    body = await json_body(request, IdentityVerification)

    async def act(session: AsyncSession, dsr: DataSubjectRequest, by: UUID, role: str, now: datetime) -> None:
        await service.verify_identity(session, dsr, method=body.method, by=by, role=role, now=now)

    return await _step(request, principal, request_id, act)


def _candidate(candidate: Candidate) -> CandidateRead:
    return CandidateRead.model_validate(candidate, from_attributes=True)


@router.post(
    "/requests/{request_id}/search",
    response_model=CandidateList,
    summary="Find the requester's contacts through the blind index (identity must be verified first)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def search(request: Request, request_id: UUID, principal: Authorized) -> CandidateList:
    now = _now(request)
    state = _state(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        try:
            found = await service.search(
                session,
                dsr,
                keystore=state.keystore,
                blind_index=state.blind_index,
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            raise _refused(exc) from None
        await session.commit()
        return CandidateList(candidates=[_candidate(c) for c in found])


@router.get(
    "/requests/{request_id}/candidates",
    response_model=CandidateList,
    summary="The contacts found for a request, each pending, confirmed or rejected",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_candidates(request: Request, request_id: UUID, principal: Authorized) -> CandidateList:
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        rows = (
            await session.scalars(
                select(Candidate).where(Candidate.request_id == dsr.request_id).order_by(Candidate.started_at)
            )
        ).all()
        await session.commit()
        return CandidateList(candidates=[_candidate(c) for c in rows])


@router.post(
    "/requests/{request_id}/candidates/{contact_ref}",
    response_model=CandidateRead,
    summary="Confirm that a found contact is the requester's, or reject it",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(CandidateDecision),
)
async def decide_candidate(
    request: Request, request_id: UUID, contact_ref: UUID, principal: Authorized
) -> CandidateRead:
    body = await json_body(request, CandidateDecision)
    now = _now(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        try:
            candidate = await service.decide_candidate(
                session,
                dsr,
                contact_ref,
                confirmed=body.confirmed,
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            raise _refused(exc) from None
        except LookupError:
            raise ApiError.field(404, "contact_ref", "not a candidate of this request") from None
        await session.commit()
        return _candidate(candidate)


@router.post(
    "/requests/{request_id}/extension",
    response_model=StepWithLetter,
    summary="Extend the time limit by one or two months (Art. 12(3)), with reasons",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(ExtensionCreate),
)
async def extend(request: Request, request_id: UUID, principal: Authorized) -> StepWithLetter:
    body = await json_body(request, ExtensionCreate)
    now = _now(request)
    policies: PolicyRegistry = _state(request).policies
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        previous_last_day = dsr.last_day
        try:
            await service.extend(
                session,
                dsr,
                months=body.months,
                reasons=[reason.value for reason in body.reasons],
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            raise _refused(exc) from None
        letter = letters.extension_letter(
            letters.LetterContext(
                case_number=dsr.case_number,
                received_on=dsr.received_at.astimezone(HELSINKI).date(),
                dated=now.astimezone(HELSINKI).date(),
                last_day=previous_last_day,
            ),
            RightName(dsr.request_type),
            [policies.latest(register) for register in dsr.registers],
            reasons=body.reasons,
            new_last_day=dsr.last_day,
        )
        await session.commit()
        return StepWithLetter(request=await _read(session, dsr, now), letter=letter)


@router.post(
    "/requests/{request_id}/status",
    response_model=RequestRead,
    summary="Wait for the requester, resume, record a withdrawal, or refuse an unverifiable request",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(StatusChange),
)
async def change_status(request: Request, request_id: UUID, principal: Authorized) -> RequestRead:
    body = await json_body(request, StatusChange)

    async def act(session: AsyncSession, dsr: DataSubjectRequest, by: UUID, role: str, now: datetime) -> None:
        if body.status == "refused" and dsr.identity_verified_at is not None:
            raise service.StepRefused("status", "a verified request is refused through its answer")
        await service.move(session, dsr, body.status, by=by, role=role, now=now, reason=body.status)

    return await _step(request, principal, request_id, act)


@router.post(
    "/requests/{request_id}/answer",
    response_model=RequestRead,
    summary="Decide per register, carry the decision out and write the reply",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(AnswerCreate),
)
async def answer_request(request: Request, request_id: UUID, principal: Authorized) -> RequestRead:
    body = await json_body(request, AnswerCreate)
    now = _now(request)
    state = _state(request)
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        try:
            await answer(
                session,
                dsr,
                keystore=state.keystore,
                blobs=state.blobs,
                kek=runtime(request).settings.kek_bytes,
                policies=state.policies,
                conditions_met={c.register_id: c.met for c in body.conditions},
                package_days=runtime(request).settings.dsr_package_days,
                blind_index=state.blind_index,
                changes=(
                    Changes(
                        corrections=tuple(
                            Correction(c.field, c.value) for c in body.rectification.corrections
                        ),
                        statement=body.rectification.statement,
                    )
                    if body.rectification is not None
                    else None
                ),
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            raise _refused(exc) from None
        except ConditionUnanswered as exc:
            raise ApiError.field(
                422,
                "conditions",
                f"the right is conditional in {exc.register}: say whether its condition holds",
            ) from None
        await session.commit()
        return await _read(session, dsr, now)


@router.get(
    "/requests/{request_id}/reply",
    response_class=PlainTextResponse,
    summary="The reply letter (Finnish, Swedish, English)",
    responses={200: {"content": {"text/plain": {}}}, **problem_responses(401, 403, 404, 409, 422)},
)
async def get_reply(request: Request, request_id: UUID, principal: Authorized) -> PlainTextResponse:
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        await session.commit()
    if dsr.reply is None:
        raise ApiError.field(409, "status", "the request has not been answered yet")
    return PlainTextResponse(dsr.reply, media_type="text/plain; charset=utf-8")


@router.get(
    "/requests/{request_id}/package",
    summary="Download the access package (ZIP), until it expires",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}, **problem_responses(401, 403, 404, 410, 422)},
)
async def download_package(request: Request, request_id: UUID, principal: Authorized) -> StreamingResponse:
    now = _now(request)
    blobs: BlobStore = _state(request).blobs
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        package = await session.scalar(
            select(Package)
            .where(Package.request_id == dsr.request_id)
            .order_by(Package.created_at.desc())
            .limit(1)
        )
        if package is None:
            await session.rollback()
            raise ApiError.field(404, "request_id", "this request has no access package")
        if package.wrapped_key is None or package.expires_at <= now:
            await session.rollback()
            raise ApiError.field(410, "request_id", "the access package has expired and was destroyed")
        key = unwrap_data_key(
            runtime(request).settings.kek_bytes,
            package.wrapped_key,
            context=package_key_context(package.package_id),
        )
        package.downloaded_at = now
        await service.audit_step(
            session,
            dsr,
            by=_actor(request, principal),
            role=principal.role.value,
            now=now,
            reason="package_downloaded",
            object_ids=[package.package_id],
            action=Action.DISCLOSE,
        )
        await session.commit()
        blob_key, case_number = package.blob_key, dsr.case_number

    async def body() -> AsyncIterator[bytes]:
        async for piece in open_package(blobs=blobs, package_key=key, blob_key=blob_key):
            yield piece

    return StreamingResponse(
        body(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{case_number}.zip"'},
    )


@router.post(
    "/requests/{request_id}/restriction/lift",
    response_model=StepWithLetter,
    summary="Set the day a restriction is lifted and get the letter telling the requester first (Art. 18(3))",
    responses=problem_responses(401, 403, 404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(RestrictionLift),
)
async def lift_restriction(request: Request, request_id: UUID, principal: Authorized) -> StepWithLetter:
    body = await json_body(request, RestrictionLift)
    now = _now(request)
    policies: PolicyRegistry = _state(request).policies
    async with runtime(request).sessionmaker() as session:
        dsr = await _load(request, session, principal, request_id)
        try:
            await service.schedule_lift(
                session,
                dsr,
                lifts_on=body.lifts_on,
                by=_actor(request, principal),
                role=principal.role.value,
                now=now,
            )
        except service.StepRefused as exc:
            raise _refused(exc) from None
        letter = letters.restriction_lifted_letter(
            letters.LetterContext(
                case_number=dsr.case_number,
                received_on=dsr.received_at.astimezone(HELSINKI).date(),
                dated=now.astimezone(HELSINKI).date(),
            ),
            [policies.latest(register) for register in dsr.registers],
            restricted_on=(dsr.closed_at or now).astimezone(HELSINKI).date(),
            lifted_on=body.lifts_on,
            reason=body.reason,
        )
        await session.commit()
        return StepWithLetter(request=await _read(session, dsr, now), letter=letter)
