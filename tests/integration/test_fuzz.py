"""Fuzzing (issue 3, point 6): schemathesis over the OpenAPI document of every service, and random and malformed
messages on every topic ingest consumes.

HTTP: each service's app runs in this process on the session's event loop (ingest is the session `ingest`
fixture, its lifespan already running; the others get theirs here), served by uvicorn on a local port, so
schemathesis talks real HTTP and its checks that send requests of their own (missing or invalid auth, other
methods) reach the same app. The fuzzing itself runs in a worker thread while the loop serves. Operations are
taken from each service's OpenAPI document, so a new route is fuzzed without touching this file.

Kafka: a few hundred hypothesis-generated malformed messages go onto each consumed topic; every one must come
out on the topic's dead-letter topic with a reason, and a valid event sent afterwards must still be stored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import hypothesis
import pytest
import schemathesis
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from services.dsr.app import create_app as create_dsr
from services.export.app import create_app as create_export
from services.retention.app import create_app as create_retention_service
from shared.contracts.events import example_event
from shared.contracts.wav import WAV_CONTENT_TYPES
from shared.messaging.kafka import DLQ_SUFFIX, header
from shared.platform.settings import Settings
from shared.policy.loader import load_policies
from shared.security.access import authorization_table
from shared.security.auth import Role
from tests.integration.conftest import Ingest, eventually, new_id, wav_bytes

pytestmark = [
    pytest.mark.integration,
    # Hypothesis notes any change of the global `random` state while it draws; here the event loop's thread
    # (the broker clients) changes it concurrently, not the strategies.
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
    ),
]


def create_retention(settings: Settings) -> Any:
    """Retention without its sweeper: these tests look at routes, and a sweeper would delete the session's
    example contacts (dated months back) while other modules still read them."""
    return create_retention_service(settings, run_sweeper=False)


MAX_EXAMPLES = 40
"""Generated cases per operation and generation mode; the explicit OpenAPI examples come on top."""
NO_AUTH_EXAMPLES = 15
STATEFUL_EXAMPLES = 15
MALFORMED_PER_TOPIC = 150

OPERATIONS_TAG = "operations"  # health, readiness and metrics: open to every caller by design

# Recordings are binary, sent as generated; an NDJSON batch is text, sent as it is.
for _media_type in WAV_CONTENT_TYPES:
    schemathesis.serializer.alias(_media_type, "application/octet-stream")
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
TEXT_BODIES = frozenset({"application/x-ndjson"})
"""Bodies whose schema is any string: whatever is generated goes on the wire as text, a valid body."""


def excluded_checks(case: Any) -> list[Any]:
    # Positive data may still be refused: the contract cannot say which registers exist, what a register
    # accepts, or which contacts are stored. A "negative" text body is valid text once sent. Everything else
    # is checked.
    if case.media_type in TEXT_BODIES:
        return [positive_data_acceptance, negative_data_rejection]
    return [positive_data_acceptance]


FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    # A failing case is reported as found: shrinking would resend hundreds of requests.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)


# Roles without a record rule first, so a case reaches everything the route can show.
_ROLE_PREFERENCE = (
    Role.PLATFORM,
    Role.MANAGER,
    Role.RESEARCH_OFFICER,
    Role.CASEWORKER,
    Role.AUDITOR,
    Role.ADMIN,
    Role.OPERATOR,
    Role.LEGAL_CLAIMS,
    Role.AGENT,
    Role.INSTITUTE,
)


def role_for(service: str, method: str, path: str) -> Role:
    """The role each case is sent with: one the authorisation table allows for the route."""
    rule = authorization_table().rule(service, method, path)
    assert rule is not None and rule.roles, (
        f"{service} {method} {path} is not in shared/security/authorization.yaml"
    )
    return next(role for role in _ROLE_PREFERENCE if role in rule.roles)


# ------------------------------------------------------------------------------------------------------------
# The four services, served over HTTP from this process.


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest keeps its own SIGINT handling


@contextlib.asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` on a free local port (its lifespan runs elsewhere); yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, timeout_keep_alive=30)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        sock.close()


@dataclass
class Served:
    name: str
    app: FastAPI
    base_url: str
    spec: dict[str, Any]

    def schema(self) -> Any:
        schema = schemathesis.openapi.from_dict(self.spec)
        schema.config.update(base_url=self.base_url)
        # The bearer token is ours to send (or to leave out), never a generated one.
        schema.config.generation.update(with_security_parameters=False)
        # 207 answers a batch item by item, and refuses each invalid one: for a batch, that is the rejection.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "207"]
        return schema


SERVICES = ("ingest", "retention", "dsr", "export")


@pytest.fixture(scope="module")
async def served(ingest: Ingest, settings: Settings) -> AsyncIterator[dict[str, Served]]:
    apps: dict[str, FastAPI] = {"ingest": ingest.app}
    async with contextlib.AsyncExitStack() as stack:
        for name, factory in (
            ("retention", create_retention),
            ("dsr", create_dsr),
            ("export", create_export),
        ):
            app = factory(settings.model_copy(update={"service_name": name}))
            await stack.enter_async_context(app.router.lifespan_context(app))
            apps[name] = app
        services = {}
        for name, app in apps.items():
            base_url = await stack.enter_async_context(_serve(app))
            services[name] = Served(name, app, base_url, app.openapi())
        yield services


@pytest.fixture(scope="module")
def tokens(token_for: Callable[..., str]) -> dict[Role, str]:
    ids = {Role.AGENT: {"agent_id": "fuzz-agent"}, Role.INSTITUTE: {"institute_id": "fuzz-institute"}}
    return {role: token_for(role, **ids.get(role, {})) for role in Role}


# ------------------------------------------------------------------------------------------------------------
# Error bodies never repeat what was submitted.


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        if "\n" in value:  # NDJSON: the lines' own values too
            for line in value.splitlines():
                with contextlib.suppress(ValueError):
                    yield from _strings(json.loads(line))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def echo_check(published: str, min_length: int = 8) -> Callable[[Any, Any, Any], bool | None]:
    """A schemathesis check: an error response (4xx/5xx) contains no value the request carried.

    Short values, and values the service knows itself (its OpenAPI document, the register ids, the text of
    the project's code, where hypothesis also draws strings from), may appear in a reason legitimately ("must
    be application/json", "unknown register"), so only submitted strings of at least `min_length` characters
    that the service could not know otherwise count."""

    def error_body_repeats_no_submitted_value(ctx: Any, response: Any, case: Any) -> bool | None:
        if response.status_code < 400:
            return None
        text = response.content.decode("utf-8", errors="replace")
        body = case.body if not isinstance(case.body, bytes) else None
        submitted = [
            *_strings(body),
            *_strings(case.query or {}),
            *_strings(case.path_parameters or {}),
            *(v for k, v in (case.headers or {}).items() if k.lower() != "authorization"),
        ]
        for value in submitted:
            if not isinstance(value, str) or len(value.strip()) < min_length or value not in text:
                continue
            assert value in published, f"the {response.status_code} error body repeats a submitted value"
        return None

    return error_body_repeats_no_submitted_value


@functools.cache
def _project_source() -> str:
    root = Path(__file__).resolve().parents[2]
    files = [
        path
        for directory in ("services", "shared", "deploy", "tests")
        for path in sorted((root / directory).rglob("*.py"))
    ]
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def _published_text(spec: dict[str, Any], settings: Settings) -> str:
    registers = load_policies(settings.policy_dir).registers()
    return "\n".join([json.dumps(spec, ensure_ascii=False), *registers, _project_source()])


# ------------------------------------------------------------------------------------------------------------
# Schemathesis runs (in a worker thread: the event loop serves the apps meanwhile).


@dataclass
class Report:
    service: str
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)

    def record(self, label: str, status: int) -> None:
        self.statuses.setdefault(label, Counter())[status] += 1

    def fail(self, label: str, what: str, exc: BaseException) -> None:
        self.failures.append(f"{self.service} {label} [{what}]: {type(exc).__name__}: {exc}")


def _operations(schema: Any) -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())  # an operation schemathesis cannot read is a failure in itself
    assert operations, "the OpenAPI document lists no operations"
    return operations


def _is_open(operation: Any) -> bool:
    return OPERATIONS_TAG in (operation.tags or [])


def _run(strategy: Any, test: Callable[[Any], None], settings: hypothesis.settings) -> None:
    @settings
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    run()


def _known_strategies(operation: Any, known: list[dict[str, str]]) -> list[Any]:
    """Positive cases addressed to stored resources: their ids fill the operation's path (and query) parameters,
    so the answers for what exists (200, its body and media type) are checked too, not only 404."""
    path = {parameter.name for parameter in operation.path_parameters}
    query = {parameter.name for parameter in operation.query}
    strategies = []
    for resource in known:
        if path and path <= set(resource):
            strategies.append(
                operation.as_strategy(
                    generation_mode=GenerationMode.POSITIVE,
                    path_parameters={name: resource[name] for name in path},
                    query={name: resource[name] for name in query if name in resource},
                )
            )
    return strategies


def _fuzz_with_roles(
    served: Served, tokens: dict[Role, str], published: str, known: list[dict[str, str]]
) -> Report:
    """Positive data, negative data, the document's own examples, and positive data addressed to stored
    resources, with an authorised role's token."""
    report = Report(served.name)
    schema = served.schema()
    echo = echo_check(published)
    for operation in _operations(schema):
        headers = (
            {}
            if _is_open(operation)
            else {
                "Authorization": (f"Bearer {tokens[role_for(served.name, operation.method, operation.path)]}")
            }
        )

        def call(case: Any, operation: Any = operation, headers: dict[str, str] = headers) -> None:
            response = case.call_and_validate(
                headers=headers, excluded_checks=excluded_checks(case), additional_checks=[echo]
            )
            report.record(operation.label, response.status_code)

        passes: list[tuple[str, Any]] = [
            ("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)),
            ("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)),
        ]
        examples = operation.get_strategies_from_examples()
        if examples:
            passes.append(("examples", st.one_of(examples)))
        stored = _known_strategies(operation, known)
        if stored:
            passes.append(("stored resources", st.one_of(stored)))
        for what, strategy in passes:
            try:
                _run(strategy, call, FUZZ_SETTINGS)
            except Unsatisfiable:
                # An operation without parameters or body has no invalid request to make; any other must.
                assert what == "negative", f"{operation.label}: no {what} cases could be generated"
                assert not list(operation.iter_parameters()), f"{operation.label}: no negative cases"
                assert not len(operation.body), f"{operation.label}: no negative cases"
            except (Exception, FailureGroup) as exc:
                report.fail(operation.label, what, exc)
    return report


def _fuzz_without_auth(served: Served, published: str) -> Report:
    """Every route but the operations ones refuses a request without an Authorization header with 401."""
    report = Report(served.name)
    schema = served.schema()
    echo = echo_check(published)
    settings = hypothesis.settings(FUZZ_SETTINGS, max_examples=NO_AUTH_EXAMPLES)
    for operation in _operations(schema):
        if _is_open(operation):
            continue

        def call(case: Any, operation: Any = operation) -> None:
            # A path parameter that is empty or holds a "/" addresses another route, or none.
            hypothesis.assume(
                all(str(v) and "/" not in unquote(str(v)) for v in case.path_parameters.values())
            )
            case.headers.pop("Authorization", None)
            response = case.call()
            report.record(operation.label, response.status_code)
            assert response.status_code == 401, f"answered {response.status_code} without a token"
            assert response.headers.get("www-authenticate"), "401 without WWW-Authenticate"
            case.validate_response(response, excluded_checks=excluded_checks(case), additional_checks=[echo])

        for what, mode in (("positive", GenerationMode.POSITIVE), ("negative", GenerationMode.NEGATIVE)):
            try:
                _run(operation.as_strategy(generation_mode=mode), call, settings)
            except Unsatisfiable:
                # As above: only an operation without parameters or body has no invalid request.
                assert what == "negative", f"{operation.label}: no {what} cases could be generated"
                assert not list(operation.iter_parameters()), f"{operation.label}: no negative cases"
                assert not len(operation.body), f"{operation.label}: no negative cases"
            except (Exception, FailureGroup) as exc:
                report.fail(operation.label, f"no auth, {what}", exc)
    return report


def _fuzz_stateful(served: Served, tokens: dict[Role, str], published: str) -> Report:
    """Sequences of calls along the document's links (declared or inferred by schemathesis)."""
    report = Report(served.name)
    schema = served.schema()
    echo = echo_check(published)
    base = schema.as_state_machine()
    if not schema.statistic.transitions.total:
        return report

    class Machine(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            if OPERATIONS_TAG in (case.operation.tags or []):
                return {}
            role = role_for(served.name, case.method, case.operation.path)
            return {"headers": {"Authorization": f"Bearer {tokens[role]}"}}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            report.record(case.operation.label, response.status_code)

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(
                response,
                excluded_checks=excluded_checks(case),
                additional_checks=[echo],
                headers=kwargs.get("headers"),
                transport_kwargs=kwargs or None,
                recorder=getattr(self, "recorder", None),
            )

    try:
        Machine.run(
            settings=hypothesis.settings(FUZZ_SETTINGS, max_examples=STATEFUL_EXAMPLES, stateful_step_count=6)
        )
    except (Exception, FailureGroup) as exc:
        report.fail("stateful", "links", exc)
    return report


def _summary(report: Report) -> str:
    return "; ".join(
        f"{label}: " + ", ".join(f"{status}x{count}" for status, count in sorted(counts.items()))
        for label, counts in sorted(report.statuses.items())
    )


@pytest.fixture(scope="module")
async def stored_contacts(ingest: Ingest) -> dict[str, list[dict[str, str]]]:
    """Per service, resources that exist: for ingest, a contact with a recording for each WAV media type that
    the upload accepts (a download must answer with a documented one)."""
    contacts = []
    for media_type in sorted(WAV_CONTENT_TYPES):
        body = example_event("call.started", event_id=new_id())
        body["contact_id"] = f"fuzz-known-{new_id()}"
        assert (await ingest.client.post("/v1/events", json=body, headers=ingest.auth())).status_code == 202
        contacts.append(
            {"contact_id": body["contact_id"], "register": body["register"], "media_type": media_type}
        )
    for contact in contacts:

        async def stored(contact: dict[str, str] = contact) -> bool:
            url = f"/v1/contacts/{contact['contact_id']}"
            return (await ingest.client.get(url, headers=ingest.auth(Role.MANAGER))).status_code == 200

        await eventually(stored, attempts=300, pause=0.05)
        put = await ingest.client.put(
            f"/v1/contacts/{contact['contact_id']}/recording",
            content=wav_bytes(0.5),
            headers={**ingest.auth(), "Content-Type": contact["media_type"]},
        )
        assert put.status_code == 201, put.text
    return {"ingest": contacts}


@pytest.mark.parametrize("service", SERVICES)
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    service: str,
    served: dict[str, Served],
    tokens: dict[Role, str],
    settings: Settings,
    stored_contacts: dict[str, list[dict[str, str]]],
) -> None:
    target = served[service]
    published = _published_text(target.spec, settings)
    started = time.monotonic()
    known = stored_contacts.get(service, [])
    report = await asyncio.to_thread(_fuzz_with_roles, target, tokens, published, known)
    stateful = await asyncio.to_thread(_fuzz_stateful, target, tokens, published)
    print(
        f"\n{service}: {time.monotonic() - started:.1f}s; {_summary(report)}; stateful: {_summary(stateful)}"
    )
    failures = report.failures + stateful.failures
    assert not failures, "\n\n".join(failures)
    for label, counts in report.statuses.items():
        assert all(status < 500 for status in counts), f"{label}: {counts}"
        # The token is valid, and its role one the route lets in: else the run fuzzed only the auth checks.
        assert 401 not in counts, f"{label} refused a valid token: {counts}"
        assert set(counts) - {403}, f"{label} refused every call with its role's token: {counts}"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_route_but_operations_answers_401_without_a_token(
    service: str, served: dict[str, Served], settings: Settings
) -> None:
    target = served[service]
    report = await asyncio.to_thread(_fuzz_without_auth, target, _published_text(target.spec, settings))
    assert not report.failures, "\n\n".join(report.failures)
    for label, counts in report.statuses.items():
        assert set(counts) == {401}, f"{label}: {counts}"


# ------------------------------------------------------------------------------------------------------------
# Malformed messages on every consumed topic.

CANARY = "fuzz-canary-7f3a"
"""Put into generated string values; a dead-letter reason must never repeat it."""

HUGE = 200_000


def _json_values() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30)
        | st.just(CANARY)
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=12,
    )


WRONG_VALUES: list[Any] = [None, 42, -1.5, True, [], {}, "", CANARY, [CANARY], {"x": CANARY}, "x" * HUGE]


def _intake_envelope() -> dict[str, Any]:
    event = example_event("call.started", event_id=new_id())
    event["contact_id"] = f"fuzz-{new_id()}"
    return event


def _sealed_envelope(
    contact_ref: str | None = None, sealed: bytes = b"\x01" + b"\x00" * 40
) -> dict[str, Any]:
    """Shaped like a sealed contact event, but nothing in it was sealed by ingest."""
    now = datetime.now(UTC).isoformat()
    return {
        "event_id": new_id(),
        "type": "call.started",
        "version": 1,
        "register": "prh-customer-service",
        "policy_version": "1",
        "contact_ref": contact_ref or new_id(),
        "channel": "phone",
        "artifact_class": "contact_history",
        "occurred_at": now,
        "received_at": now,
        "content_digest": "0" * 64,
        "attributes": {},
        "blind_index": [],
        "sealed": base64.b64encode(sealed).decode(),
    }


REQUIRED = {
    "intake": ("event_id", "type", "register", "contact_id", "occurred_at", "data"),
    "sealed": (
        "event_id",
        "type",
        "register",
        "policy_version",
        "contact_ref",
        "channel",
        "artifact_class",
        "occurred_at",
        "received_at",
        "content_digest",
        "sealed",
    ),
}
# Wrong values an intake field would still accept, as part of a valid event: kept off those fields. (On the
# sealed topic whatever still decodes names a data key that does not exist: malformed all the same.)
INTAKE_ACCEPTS = {"data": ({},), "contact_id": (CANARY,)}


def _malformed(kind: str, known_ref: str | None = None) -> st.SearchStrategy[bytes | None]:
    """Messages that can never become a stored event: random bytes, JSON of any shape, truncated JSON,
    envelopes with a required field missing, null, empty, of the wrong type or huge, and (for the sealed
    topic) well-formed envelopes that name no existing data key, or an existing one (`known_ref`'s) with a
    ciphertext that does not open or is not base64."""
    envelope = _intake_envelope if kind == "intake" else _sealed_envelope
    required = REQUIRED[kind]

    def dump(value: Any) -> bytes:
        return json.dumps(value).encode()

    @st.composite
    def truncated(draw: st.DrawFn) -> bytes:
        whole = dump(envelope())
        return whole[: draw(st.integers(0, len(whole) - 1))]

    def wrong_type(name: str, value: Any) -> bytes:
        event = envelope()
        event[name] = value
        return dump(event)

    def missing(name: str) -> bytes:
        event = envelope()
        del event[name]
        return dump(event)

    accepts = INTAKE_ACCEPTS if kind == "intake" else {}
    wrong = st.sampled_from(required).flatmap(
        lambda name: st.sampled_from([v for v in WRONG_VALUES if v not in accepts.get(name, ())]).map(
            lambda value: wrong_type(name, value)
        )
    )
    options = [
        st.binary(max_size=300),
        _json_values().map(dump),
        truncated(),
        wrong,
        st.sampled_from(required).map(missing),
        st.just(b""),
        st.just(None),
        st.just(b"null"),
        st.just(b"{}"),
        st.just(b"[]"),
        st.builds(lambda: dump({**envelope(), "unexpected": CANARY})),
        st.builds(lambda: b'{"event_id": "' + b"9" * HUGE + b'"}'),
    ]
    if kind == "sealed":
        forged = st.binary(max_size=200).map(lambda garbage: dump(_sealed_envelope(known_ref, garbage)))
        options += [
            st.builds(lambda: dump(_sealed_envelope())),  # no data key for this contact
            forged,  # the key exists; the ciphertext is not its
            st.builds(lambda: dump({**_sealed_envelope(known_ref), "sealed": "%%% not base64 %%%"})),
        ]
    return st.one_of(options)


def _generate(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` values drawn by hypothesis (a generator here: what is asserted happens later, on the broker)."""
    drawn: list[Any] = []

    @hypothesis.settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


async def _produce(settings: Settings, topic: str, messages: list[tuple[bytes, bytes | None]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_idempotence=settings.kafka_enable_idempotence,
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _dead_letters(settings: Settings, topic: str, keys: set[bytes]) -> dict[bytes, Any]:
    """The records with these keys on `<topic>.dlq`, read from the start; bounded in time."""
    consumer = AIOKafkaConsumer(
        topic + DLQ_SUFFIX,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"test-fuzz-dlq-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    found: dict[bytes, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while set(found) != keys and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    if record.key in keys:
                        found[record.key] = record
    finally:
        await consumer.stop()
    return found


TOPICS = {"intake": "contact-events.intake", "sealed": "contact-events"}
"""The topics ingest consumes, by the kind of message they carry: plaintext events, sealed events."""


def test_every_consumed_topic_is_fuzzed(ingest: Ingest) -> None:
    consumed = {topic for loop in ingest.app.state.consumer_loops for topic in loop.topics}
    assert consumed == {ingest.settings.topic(name) for name in TOPICS.values()}


@pytest.mark.parametrize("kind", sorted(TOPICS))
async def test_malformed_messages_are_dead_lettered_and_the_consumers_go_on(
    ingest: Ingest, kind: str
) -> None:
    settings = ingest.settings
    topic = settings.topic(TOPICS[kind])
    # A stored contact, so that forged sealed events can name a data key that exists.
    seed = example_event("call.started", event_id=new_id())
    seed["contact_id"] = f"fuzz-seed-{new_id()}"
    response = await ingest.client.post("/v1/events", json=seed, headers=ingest.auth())
    assert response.status_code == 202, response.text
    known_ref = str(ingest.app.state.intake.contact_ref(seed["register"], seed["contact_id"]))
    # Drawn on the loop's own thread: hypothesis watches the global `random` state while it draws, and the
    # consumers' client libraries use it.
    values = _generate(_malformed(kind, known_ref), MALFORMED_PER_TOPIC)
    run = uuid.uuid4().hex[:8]
    messages = [(f"fuzz-{kind}-{run}-{i}".encode(), value) for i, value in enumerate(values)]
    await _produce(settings, topic, messages)

    # Then a valid event: onto the intake topic itself, or (for the sealed topic) through HTTP.
    valid = example_event("chat.message", event_id=new_id())
    valid["contact_id"] = f"after-fuzz-{kind}-{new_id()}"
    if kind == "intake":
        await _produce(settings, topic, [(f"valid-{run}".encode(), json.dumps(valid).encode())])
    else:
        response = await ingest.client.post("/v1/events", json=valid, headers=ingest.auth())
        assert response.status_code == 202, response.text

    async def stored() -> bool:
        got = await ingest.client.get(
            f"/v1/contacts/{valid['contact_id']}", headers=ingest.auth(Role.MANAGER)
        )
        return got.status_code == 200

    await eventually(stored, attempts=300, pause=0.1)

    keys = {key for key, _ in messages}
    letters = await _dead_letters(settings, topic, keys)
    missing = keys - set(letters)
    assert not missing, f"{len(missing)} of {len(keys)} malformed messages never reached {topic}{DLQ_SUFFIX}"
    by_key = dict(messages)
    for key, record in letters.items():
        reason = header(record, "sailo-dlq-reason")
        assert reason, f"{key!r}: dead letter without a reason"
        assert CANARY not in reason, f"{key!r}: the reason repeats the message's content: {reason[:200]}"
        assert header(record, "sailo-dlq-source-topic") == topic
        assert record.value == by_key[key], f"{key!r}: the dead letter does not carry the original message"
