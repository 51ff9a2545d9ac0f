"""HTTP pieces every service shares: problem-detail errors, health/readiness/metrics routes, security headers.

Errors carry their status and name the offending field with a reason; they never echo the submitted value, so
no personal data reaches an error body. FastAPI's own validation errors are rewritten to the same shape (its
default body quotes the input).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.platform.errors import ApiError, FieldError
from shared.platform.logging import get_logger

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Problem details (RFC 9457): each offending field with the reason, never its value",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the problem+json answers a route can give."""
    content = {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}
    return {code: {"description": "Problem details", "content": content} for code in codes}


"""The body `problem()` answers every error with, for the services' OpenAPI documents."""

HTTP_REQUESTS = Counter(
    "sailo_http_requests_total", "HTTP requests", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "sailo_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def problem(
    status: int, title: str, errors: Sequence[FieldError] = (), headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")


def pydantic_errors(errors: Sequence[Any], *, drop_prefix: int = 0) -> list[FieldError]:
    """Field and reason from pydantic error dicts, without the `input` they carry."""
    out: list[FieldError] = []
    for error in errors:
        # A location part is a field name or an index; an unknown key is the client's own text and could be
        # anything, personal data included, so it is not repeated.
        loc = [
            str(part) if isinstance(part, int) or _FIELD_NAME.fullmatch(str(part)) else "(unknown field)"
            for part in error.get("loc", ())
        ][drop_prefix:]
        message = str(error.get("msg", "invalid"))
        # Our own validators raise IdentifierError(reason); pydantic prefixes "Value error, ".
        message = message.removeprefix("Value error, ")
        out.append(FieldError(".".join(loc) or "body", message))
    return out


JSON_BODY_LIMIT = 64 * 1024
"""Default size limit of a JSON request body read by :func:`json_body`."""

M = TypeVar("M", bound=BaseModel)


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``, for routes that read it with
    :func:`json_body` (the model must not refer to other models: its schema is inlined)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def json_body(request: Request, model: type[M], *, limit: int = JSON_BODY_LIMIT) -> M:
    """The request's JSON body as ``model``, read only once the route's dependencies have run.

    A body declared as a parameter is parsed before any dependency, so a caller without a token would learn
    that their body is malformed (422) before being told they are not authenticated (401). Routes that take
    a body read it with this instead, after authorisation: 415, 413, or 422 naming each field.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError.field(415, "content-type", "must be application/json", title="Unsupported media type")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError.field(413, "body", f"larger than {limit} bytes", title="Body too large")
        chunks.append(chunk)
    try:
        return model.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_input=False)]
        raise ApiError(422, "Request is not valid", pydantic_errors(errors)) from None


async def _api_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.title, exc.errors, exc.headers)


async def _validation_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem(422, "Request is not valid", pydantic_errors(exc.errors()))


async def _http_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
        # FastAPI's own wording names no field; say which one, as every other 4xx does.
        return problem(400, "Malformed body", [FieldError("body", "could not be parsed as its content type")])
    return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


async def _dependency_down_handler(request: Request, exc: Exception) -> Response:
    # The database or the network failed under the request: the client may retry; nothing was accepted.
    log.warning(
        "http.dependency_unavailable", path=request.scope.get("route", request).path, error=type(exc).__name__
    )
    return problem(503, "Service temporarily unavailable", headers={"Retry-After": "5"})


# SQLSTATE classes of a database that went away under the request: 08 connection exception; 57P01 admin
# shutdown (a session terminated, a restart), 57P02 crash shutdown, 57P03 cannot connect now (starting up).
_CONNECTION_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def database_went_away(exc: BaseException) -> bool:
    """Whether a database error means the connection or the server was lost, not that the statement failed.

    asyncpg reports a terminated session or a restarting server as InternalError or a bare DBAPIError, not as
    OperationalError; a client should hear 503 and retry, as for any other outage.
    """
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    if state.startswith(_CONNECTION_LOST_STATES):
        return True
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return type(cause).__name__ in ("ConnectionDoesNotExistError", "ConnectionResetError", "InterfaceError")


async def _database_error_handler(request: Request, exc: Exception) -> Response:
    if database_went_away(exc):
        return await _dependency_down_handler(request, exc)
    return await _unexpected_handler(request, exc)


async def _unexpected_handler(request: Request, exc: Exception) -> Response:
    # The exception type only: its message may quote data.
    log.error("http.unhandled_error", path=request.url.path, error=type(exc).__name__)
    return problem(500, "Internal error")


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# The interactive docs page loads its own script and styles.
DOCS_PATHS = ("/docs", "/redoc")


class _HeadersAndMetrics:
    """Security headers on every response, and request count and latency per route template.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs each request in an extra task and buffers
    its body, which costs more than some of the handlers it wraps.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        status_code = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name == "Content-Security-Policy" and path.startswith(DOCS_PATHS):
                        continue
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The route template, never the concrete path: paths carry contact ids.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, template, method, str(status_code)).inc()
            HTTP_LATENCY.labels(self.service, template, method).observe(time.perf_counter() - started)


def install_common(
    app: FastAPI, *, service: str, ready_checks: Sequence[Callable[[Request], Awaitable[None]]]
) -> None:
    """Error handlers, security headers, request metrics, and /healthz, /readyz, /metrics."""
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    for transient in (OperationalError, InterfaceError, ConnectionError, TimeoutError):
        app.add_exception_handler(transient, _dependency_down_handler)
    app.add_exception_handler(DBAPIError, _database_error_handler)
    app.add_exception_handler(Exception, _unexpected_handler)

    app.add_middleware(_HeadersAndMetrics, service=service)

    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get(
        "/readyz",
        summary="Readiness: the database and the broker answer",
        responses={
            503: {
                "description": "A dependency does not answer",
                "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
            }
        },
    )
    async def readyz(request: Request) -> Response:
        failures = []
        for check in ready_checks:
            try:
                await check(request)
            except Exception as exc:
                failures.append(FieldError(getattr(check, "dependency", check.__name__), type(exc).__name__))
        if failures:
            return problem(503, "Not ready", failures, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready", "service": service})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
