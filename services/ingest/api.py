"""Ingest's HTTP routes: thin; parsing and rules live in intake.py, recordings.py and contacts.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.contacts import find_contact, read_contact
from services.ingest.intake import IntakeService, Outcome
from services.ingest.ratelimit import enforce_rate_limit
from services.ingest.recordings import WAV_CONTENT_TYPES, RecordingService
from services.ingest.schemas import BatchRead, ContactRead, EventOutcomeRead, RecordingRead
from shared.app import runtime
from shared.audit.chain import Action
from shared.audit.chain import Outcome as AuditOutcome
from shared.audit.log import actor_ref, record, record_now
from shared.contracts.events import EVENT_TYPES, example_event
from shared.platform.errors import ApiError, FieldError
from shared.platform.http import PROBLEM_JSON, PROBLEM_SCHEMA
from shared.policy.registry import PolicyRegistry
from shared.recordstore.keystore import KeyStore
from shared.recordstore.models import Contact
from shared.security.access import authorize
from shared.security.auth import Principal

SERVICE = "ingest"
router = APIRouter(prefix="/v1", tags=["ingest"])

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")

# Which roles may call each route is in shared/security/authorization.yaml; record rules are applied in the queries.
Authorized = Annotated[Principal, Depends(authorize(SERVICE))]
RegisterQuery = Annotated[
    str | None,
    Query(
        description="The register of the contact; needed only if the contact id exists in several registers",
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
    ),
]
ContactIdPath = Annotated[
    str,
    Path(
        description="The platform's id of the contact",
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:@+=-]+$",
    ),
]


# A recording is uploaded as any of the WAV media types, and served back as the one it was uploaded as.
_WAV_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in sorted(
        WAV_CONTENT_TYPES, key=lambda media_type: (media_type != "audio/wav", media_type)
    )
}


def _problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    content = {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}
    return {code: {"description": "Problem details", "content": content} for code in codes}


_CONTACT = "#/paths/~1v1~1contacts~1{contact_id}"


def _contact_links(source: str, *targets: str) -> dict[str, Any]:
    """OpenAPI links from an answer to the contact's routes, its id and register taken from `source` (a runtime
    expression such as ``$request.body``): what a client (and stateful fuzzing) can call next."""
    operations = {
        "GetContact": f"{_CONTACT}/get",
        "GetRecording": f"{_CONTACT}~1recording/get",
        "PutRecording": f"{_CONTACT}~1recording/put",
    }
    parameters = {"contact_id": f"{source}#/contact_id", "register": f"{source}#/register"}
    return {name: {"operationRef": operations[name], "parameters": parameters} for name in targets}


def _state(request: Request) -> Any:
    return request.app.state


def intake_service(request: Request) -> IntakeService:
    service = _state(request).intake
    assert isinstance(service, IntakeService)
    return service


def recording_service(request: Request) -> RecordingService:
    service = _state(request).recordings
    assert isinstance(service, RecordingService)
    return service


async def _find_contact(
    request: Request,
    session: AsyncSession,
    contact_id: str,
    register: str | None,
    principal: Principal | None = None,
) -> Contact:
    state = _state(request)
    return await find_contact(
        session,
        blind_index=state.blind_index,
        policies=state.policies,
        contact_id=contact_id,
        register=register,
        principal=principal,
    )


async def _reader_contact(
    request: Request,
    session: AsyncSession,
    contact_id: str,
    register: str | None,
    principal: Principal,
    action: Action,
) -> Contact:
    """The contact a reader asked for under their record rules; a refusal or a miss is audited, then raised."""
    try:
        return await _find_contact(request, session, contact_id, register, principal)
    except ApiError as exc:
        await session.rollback()
        rt = runtime(request)
        await record_now(
            rt.sessionmaker,
            actor=actor_ref(_state(request).blind_index, principal.subject),
            role=principal.role.value,
            action=action,
            object_type="contact",
            outcome=AuditOutcome.DENIED if exc.status == 403 else AuditOutcome.FAILED,
            reason=f"http_{exc.status}",
            service=SERVICE,
            occurred_at=rt.clock.now(),
        )
        raise


async def _audit(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    action: Action,
    object_type: str,
    contact: Contact,
) -> None:
    """Record a successful step in `session`'s transaction: the step and its audit entry commit together."""
    await record(
        session,
        actor=actor_ref(_state(request).blind_index, principal.subject),
        role=principal.role.value,
        action=action,
        object_type=object_type,
        object_ids=[contact.contact_ref],
        service=SERVICE,
        occurred_at=runtime(request).clock.now(),
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing it with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError.field(413, "body", f"larger than {limit} bytes", title="Body too large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError.field(413, "body", f"larger than {limit} bytes", title="Body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome_read(outcome: Outcome, index: int | None = None) -> dict[str, Any]:
    """One item's answer, shaped as EventOutcomeRead (built as a dict: a batch has many)."""
    return {
        "index": index,
        "event_id": outcome.event_id,
        "status": outcome.status,
        "outcome": outcome.outcome,
        "errors": [e.as_dict() for e in outcome.errors],
        "dropped_fields": outcome.dropped_fields,
    }


def _event_openapi(batch: bool) -> dict[str, Any]:
    examples = {name: {"summary": name, "value": example_event(name)} for name in EVENT_TYPES}
    if batch:
        array = {
            "summary": "two events",
            "value": [
                example_event("call.started"),
                example_event("call.ended", event_id="6c0d9a52-2e55-4d0e-8f0e-1b6b6f4d7a10"),
            ],
        }
        ndjson = "\n".join(
            json.dumps(example_event(n, event_id=f"00000000-0000-4000-8000-{i:012d}"))
            for i, n in enumerate(("call.started", "call.answered", "call.ended"))
        )
        return {
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ContactEvent"}},
                        "examples": {"array": array},
                    },
                    "application/x-ndjson": {"schema": {"type": "string"}, "example": ndjson},
                },
            }
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/ContactEvent"},
                    "examples": examples,
                }
            },
        }
    }


@router.post(
    "/events",
    status_code=202,
    response_model=EventOutcomeRead,
    summary="Submit one contact event",
    openapi_extra=_event_openapi(batch=False),
    responses={
        202: {
            "description": "Accepted (or a faithful resend); the contact is readable once stored",
            "links": _contact_links("$request.body", "GetContact", "GetRecording", "PutRecording"),
        },
        **_problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
)
async def post_event(request: Request, principal: Authorized) -> Response:
    """Validate one event against its contract and register policy, publish it, and answer 202 once the broker
    has acknowledged it. A resend of the same event is 202 again and changes nothing; the same `event_id` with
    different content is 409."""
    await enforce_rate_limit(request, principal)
    if _media_type(request) not in JSON_TYPES:
        raise ApiError.field(415, "content-type", "must be application/json", title="Unsupported media type")
    service = intake_service(request)
    body = await read_body(request, runtime(request).settings.ingest_max_body_bytes)
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError.field(400, "body", f"not valid JSON (at position {getattr(exc, 'pos', 0)})") from None
    outcome = (await service.accept([raw]))[0]
    if outcome.status == 202:
        return JSONResponse(_outcome_read(outcome), status_code=202)
    headers = {"Retry-After": "5"} if outcome.status == 503 else None
    raise ApiError(outcome.status, _TITLES.get(outcome.status, "Rejected"), outcome.errors, headers=headers)


_TITLES = {409: "Conflicting resend", 422: "Invalid event", 503: "Broker unavailable"}


@router.post(
    "/events/batch",
    response_model=BatchRead,
    status_code=202,
    summary="Submit a batch of contact events (JSON array or NDJSON)",
    openapi_extra=_event_openapi(batch=True),
    responses={
        207: {"description": "Some items were not accepted; see each result", "model": BatchRead},
        **_problem_responses(400, 401, 403, 413, 415, 422, 429),
    },
)
async def post_batch(request: Request, principal: Authorized) -> Response:
    """Each item is answered on its own: one bad item never sinks the good ones. 202 when every item was
    accepted (or was a faithful resend), 207 otherwise."""
    settings = runtime(request).settings
    media = _media_type(request)
    if media not in JSON_TYPES + NDJSON_TYPES:
        raise ApiError.field(
            415,
            "content-type",
            "must be application/json or application/x-ndjson",
            title="Unsupported media type",
        )
    body = await read_body(request, settings.ingest_max_body_bytes)
    items: list[Any] = []
    broken: dict[int, FieldError] = {}
    if media in JSON_TYPES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError.field(
                400, "body", f"not valid JSON (at position {getattr(exc, 'pos', 0)})"
            ) from None
        if not isinstance(parsed, list):
            raise ApiError.field(422, "body", "a batch must be a JSON array of events")
        items = parsed
    else:
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                broken[len(items)] = FieldError(f"line {number}", "not valid JSON")
                items.append(None)
    if not items:
        raise ApiError.field(422, "body", "the batch is empty")
    if len(items) > settings.ingest_max_batch_items:
        raise ApiError.field(
            413,
            "body",
            f"{len(items)} items; at most {settings.ingest_max_batch_items} per batch",
            title="Too many",
        )
    await enforce_rate_limit(request, principal, cost=len(items))
    positions = [i for i in range(len(items)) if i not in broken]
    outcomes = await intake_service(request).accept([items[i] for i in positions])
    results: list[dict[str, Any] | None] = [None] * len(items)
    for i, outcome in zip(positions, outcomes, strict=True):
        results[i] = _outcome_read(outcome, i)
    for i, error in broken.items():
        results[i] = _outcome_read(Outcome(400, "rejected", None, [error]), i)
    final = [r for r in results if r is not None]
    rejected = sum(r["status"] != 202 for r in final)
    batch = {
        "accepted": sum(r["outcome"] == "accepted" for r in final),
        "duplicates": sum(r["outcome"] == "duplicate" for r in final),
        "rejected": rejected,
        "results": final,
    }
    headers = {"Retry-After": "5"} if any(r["status"] == 503 for r in final) else None
    return JSONResponse(batch, status_code=202 if rejected == 0 else 207, headers=headers)


@router.put(
    "/contacts/{contact_id}/recording",
    response_model=RecordingRead,
    status_code=201,
    summary="Upload the call recording of a contact (streaming WAV)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": _WAV_CONTENT,
        }
    },
    responses={
        200: {
            "description": "The same recording was already stored",
            "model": RecordingRead,
            "links": _contact_links("$response.body", "GetRecording"),
        },
        201: {"description": "Stored", "links": _contact_links("$response.body", "GetRecording")},
        **_problem_responses(401, 403, 404, 409, 411, 413, 415, 422, 429),
    },
)
async def put_recording(
    request: Request, contact_id: ContactIdPath, principal: Authorized, register: RegisterQuery = None
) -> Response:
    """Streams the audio through SHA-256 and chunked AES-256-GCM into the blob store; nothing is kept in clear.
    The contact must already be known from its events."""
    await enforce_rate_limit(request, principal)
    media = _media_type(request)
    if media not in WAV_CONTENT_TYPES:
        raise ApiError.field(415, "content-type", "must be audio/wav", title="Unsupported media type")
    service = recording_service(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > service.max_bytes:
        raise ApiError.field(413, "body", f"recording exceeds {service.max_bytes} bytes", title="Too large")
    state = _state(request)
    async with runtime(request).sessionmaker() as session:
        contact = await _find_contact(request, session, contact_id, register)
    policies: PolicyRegistry = state.policies
    policy = policies.version_at(contact.register, contact.started_at)
    if policy is None or policy.retention_for("recording") is None:
        raise ApiError.field(422, "register", f"register {contact.register} keeps no recordings")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    async def audit(session: AsyncSession) -> None:
        await _audit(request, session, principal, Action.CREATE, "recording", contact)

    artifact, created = await service.store(contact, body(), content_type=media, audit=audit)
    read = RecordingRead(
        contact_id=contact_id,
        register_id=contact.register,
        sha256=artifact.sha256 or "",
        size_bytes=artifact.size_bytes or 0,
        duration_ms=artifact.duration_ms,
        content_type=artifact.content_type or media,
        stored="created" if created else "unchanged",
    )
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactRead,
    summary="Read a contact, decrypted",
    responses={
        200: {"description": "The contact", "links": _contact_links("$response.body", "GetRecording")},
        **_problem_responses(401, 403, 404, 409, 422),
    },
)
async def get_contact(
    request: Request, contact_id: ContactIdPath, principal: Authorized, register: RegisterQuery = None
) -> ContactRead:
    """Managers read any contact; an agent reads only the contacts they handled; a restricted contact only the
    legal-claims role. Every read, and every refused one, leaves an audit entry."""
    keystore: KeyStore = _state(request).keystore
    async with runtime(request).sessionmaker() as session:
        contact = await _reader_contact(request, session, contact_id, register, principal, Action.READ)
        href = str(
            request.url_for("get_recording", contact_id=contact_id).include_query_params(
                register=contact.register
            )
        )
        read = await read_contact(
            session, keystore=keystore, contact=contact, contact_id=contact_id, recording_href=href
        )
        await _audit(request, session, principal, Action.READ, "contact", contact)
        await session.commit()
    return read


@router.get(
    "/contacts/{contact_id}/recording",
    summary="Listen to a contact's recording (decrypting stream)",
    response_class=StreamingResponse,
    responses={
        200: {"content": _WAV_CONTENT},
        **_problem_responses(401, 403, 404, 409, 410, 422),
    },
)
async def get_recording(
    request: Request, contact_id: ContactIdPath, principal: Authorized, register: RegisterQuery = None
) -> StreamingResponse:
    """Decrypts the stored recording chunk by chunk as it is sent; the listen is audited before it starts."""
    service = recording_service(request)
    async with runtime(request).sessionmaker() as session:
        contact = await _reader_contact(request, session, contact_id, register, principal, Action.LISTEN)
        artifact, key = await service.recording_of(session, contact)
        await _audit(request, session, principal, Action.LISTEN, "recording", contact)
        await session.commit()
    return StreamingResponse(
        service.stream(artifact, key),
        media_type=artifact.content_type or "audio/wav",
        headers={"Content-Length": str(artifact.size_bytes)} if artifact.size_bytes is not None else None,
    )
