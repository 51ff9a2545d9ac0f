"""POST /v1/events and /v1/events/batch: contact events from platforms.

These routes take no database session: intake runs its own transactions around the broker's acknowledgement
(services.ingest.service.intake says why), and that protocol is what makes an accepted event stored exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from services.ingest.api.common import (
    Authorized,
    IntakeDep,
    contact_links,
    media_type,
    problem_responses,
    read_body,
)
from services.ingest.ratelimit import enforce_rate_limit
from services.ingest.schemas import BatchRead, EventOutcomeRead
from shared.app import runtime
from shared.contracts.events import EVENT_TYPES, example_event
from shared.platform.errors import ApiError, FieldError

router = APIRouter(prefix="/v1", tags=["ingest"])

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")


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


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError.field(400, "body", f"not valid JSON (at position {getattr(exc, 'pos', 0)})") from None


@router.post(
    "/events",
    status_code=202,
    response_model=EventOutcomeRead,
    summary="Submit one contact event",
    openapi_extra=_event_openapi(batch=False),
    responses={
        202: {
            "description": "Accepted (or a faithful resend); the contact is readable once stored",
            "links": contact_links("$request.body", "GetContact", "GetRecording", "PutRecording"),
        },
        **problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
)
async def post_event(request: Request, principal: Authorized, intake: IntakeDep) -> Response:
    """Validate one event against its contract and register policy, publish it, and answer 202 once the broker
    has acknowledged it. A resend of the same event is 202 again and changes nothing; the same `event_id` with
    different content is 409."""
    await enforce_rate_limit(request, principal)
    if media_type(request) not in JSON_TYPES:
        raise ApiError.field(415, "content-type", "must be application/json", title="Unsupported media type")
    body = await read_body(request, runtime(request).settings.ingest_max_body_bytes)
    outcome = await intake.accept_one(_json(body))
    return JSONResponse(outcome.read(), status_code=202)


@router.post(
    "/events/batch",
    response_model=BatchRead,
    status_code=202,
    summary="Submit a batch of contact events (JSON array or NDJSON)",
    openapi_extra=_event_openapi(batch=True),
    responses={
        207: {"description": "Some items were not accepted; see each result", "model": BatchRead},
        **problem_responses(400, 401, 403, 413, 415, 422, 429),
    },
)
async def post_batch(request: Request, principal: Authorized, intake: IntakeDep) -> Response:
    """Each item is answered on its own: one bad item never sinks the good ones. 202 when every item was
    accepted (or was a faithful resend), 207 otherwise."""
    settings = runtime(request).settings
    media = media_type(request)
    if media not in JSON_TYPES + NDJSON_TYPES:
        raise ApiError.field(
            415,
            "content-type",
            "must be application/json or application/x-ndjson",
            title="Unsupported media type",
        )
    body = await read_body(request, settings.ingest_max_body_bytes)
    items: list[Any] = []
    unparsable: dict[int, FieldError] = {}
    if media in JSON_TYPES:
        parsed = _json(body)
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
                unparsable[len(items)] = FieldError(f"line {number}", "not valid JSON")
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
    answer = await intake.accept_batch(items, unparsable)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
