"""Logging configuration and the personal-data scrubber (shared/platform/logging.py)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from shared.platform.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    scrub_personal_data,
    scrub_text,
)

Capture = Callable[..., io.StringIO]

PHONE_SPELLINGS = [
    "+358401234567",
    "+358 40 123 4567",
    "+358-40-123-4567",
    "+358 (0)40 123 4567",
    "00358401234567",
    "040 123 4567",
    "040-123 4567",
    "0401234567",
    "(09) 1234 5678",
    "09-1234 5678",
    "029 509 5000",
    "+46 70 123 45 67",
    "+1 202-456-1111",
    "040.123.4567",
    "358401234567",
]
EMAILS = ["matti.meikalainen@example.fi", "Maija+kela@Posti.FI", "äiti@esimerkki.fi"]
HETUS = ["131052-308T", "010594Y9021", "020516C903K", "131052+308T"]
IBANS = ["FI21 1234 5600 0007 85", "FI2112345600000785", "GB29 NWBK 6016 1331 9268 19"]
CARDS = ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "5500 0000 0000 0004"]
CHAT_TEXT = "Hei, olen Maija Meikäläinen ja asun Mannerheimintie 1:ssä, tarvitsen apua"


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", text)


def assert_absent(output: str, secret: str) -> None:
    assert secret not in output
    digits = digits_of(secret)
    if len(digits) >= 7:
        # Also no other spelling of the same number (e.g. separators dropped by a renderer).
        assert digits not in digits_of_runs(output)


def digits_of_runs(output: str) -> list[str]:
    """The digit runs of *output*, separators inside a run removed."""
    return [digits_of(run) for run in re.findall(r"[\d+()][\d ()\-/.]*\d", output)]


@pytest.fixture
def capture() -> Iterator[Capture]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def configure(*, json: bool = True, service: str = "ingest", level: str = "INFO") -> io.StringIO:
        stream = io.StringIO()
        configure_logging(service=service, json=json, level=level, stream=stream)
        return stream

    yield configure

    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# ---------------------------------------------------------------------------------------------------------
# Personal data never reaches the output
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
@pytest.mark.parametrize("secret", PHONE_SPELLINGS + EMAILS + HETUS + IBANS + CARDS)
def test_personal_data_is_scrubbed_everywhere(capture: Capture, json_mode: bool, secret: str) -> None:
    stream = capture(json=json_mode)
    log = get_logger("tests.logging")
    # The event name itself carrying personal data is exactly the mistake under test.
    log.info(
        f"contact from {secret}",  # noqa: G004
        detail=f"value {secret} seen",
        nested={"list": [secret, (secret,)]},
    )
    log.info("positional %s", secret)
    log.warning("found", **{"what": secret})
    output = stream.getvalue()
    assert output.count("\n") == 3
    assert_absent(output, secret)


@pytest.mark.parametrize(
    ("secret", "placeholder"),
    [
        ("+358 40 123 4567", "[phone]"),
        ("040-123 4567", "[phone]"),
        ("matti@example.fi", "[email]"),
        ("131052-308T", "[hetu]"),
        ("FI21 1234 5600 0007 85", "[iban]"),
        ("4111 1111 1111 1111", "[number]"),
        ("192.168.10.20", "[ip]"),
    ],
)
def test_placeholders_name_what_was_removed(capture: Capture, secret: str, placeholder: str) -> None:
    stream = capture()
    get_logger("tests.logging").info("lookup", query=f"asiakas {secret} soitti")
    assert lines(stream)[0]["query"] == f"asiakas {placeholder} soitti"


def test_free_text_and_identity_keys_are_redacted_whole(capture: Capture) -> None:
    stream = capture()
    get_logger("tests.logging").info(
        "chat message received",
        text=CHAT_TEXT,
        nickname="maija77",
        name="Maija Meikäläinen",
        caller_number="+358401234567",
        subject="Asumistuki / Maija",
        answers=["Maija", "Helsinki"],
        ip="10.1.2.3",
        payload={"message": CHAT_TEXT, "body": "Maija", "Content": "Maija"},
    )
    line = lines(stream)[0]
    output = stream.getvalue()
    for word in ("Maija", "Meikäläinen", "Mannerheimintie", "tarvitsen", "maija77", "Helsinki"):
        assert word not in output
    for key in ("text", "nickname", "name", "caller_number", "subject", "answers", "ip"):
        assert line[key] == REDACTED
    assert line["payload"] == {"message": REDACTED, "body": REDACTED, "Content": REDACTED}
    assert line["event"] == "chat message received"


def test_stdlib_library_lines_are_scrubbed(capture: Capture) -> None:
    stream = capture()
    logging.getLogger("uvicorn.error").warning("caller +358401234567")
    logging.getLogger("aiokafka").info("record for %s from %s", "matti@example.fi", "040 123 4567")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "203.0.113.7:51234", "GET", "/contacts?phone=0401234567", "1.1", 200
    )
    output = stream.getvalue()
    for secret in ("+358401234567", "matti@example.fi", "040 123 4567", "0401234567", "203.0.113.7"):
        assert_absent(output, secret)
    first, second, third = lines(stream)
    assert first["event"] == "caller [phone]"
    assert first["logger"] == "uvicorn.error"
    assert first["level"] == "warning"
    assert first["service"] == "ingest"
    # A library's arguments are the data it handled: only its template is kept.
    assert second["event"] == "record for %s from %s"
    assert third["event"] == '%s - "%s %s HTTP/%s" %d'


def test_a_library_line_never_carries_the_message_it_handled(capture: Capture) -> None:
    stream = capture()
    value = b'{"text": "Hei, olen Kanarialintu ja asun Kanarialassa"}'
    logging.getLogger("aiokafka.producer.producer").warning("Sending (key=%r value=%r)", None, value)
    output = stream.getvalue()
    assert "Kanaria" not in output
    assert lines(stream)[0]["event"] == "Sending (key=%r value=%r)"


def test_library_loggers_with_their_own_handlers_are_routed_through_the_scrubber(capture: Capture) -> None:
    leaked = io.StringIO()
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(logging.StreamHandler(leaked))
    uvicorn_logger.propagate = False
    stream = capture()
    logging.getLogger("uvicorn.error").error("caller 040 123 4567")
    assert leaked.getvalue() == ""
    assert lines(stream)[0]["event"] == "caller [phone]"


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "console"])
def test_exception_text_is_scrubbed_in_the_rendered_traceback(capture: Capture, json_mode: bool) -> None:
    stream = capture(json=json_mode)
    log = get_logger("tests.logging")
    try:
        raise ValueError("no contact for +358 40 123 4567 / matti@example.fi")
    except ValueError:
        log.exception("lookup failed")
        logging.getLogger("sqlalchemy.engine").exception("query failed")
    try:
        try:
            raise KeyError("131052-308T")
        except KeyError as inner:
            raise RuntimeError("wrapped 0401234567") from inner
    except RuntimeError as error:
        log.error("chained", exc_info=error)
    output = stream.getvalue()
    for secret in ("+358 40 123 4567", "matti@example.fi", "131052-308T", "0401234567"):
        assert_absent(output, secret)
    assert "ValueError: no contact for [phone] / [email]" in output
    assert "Traceback (most recent call last)" in output
    if json_mode:
        records = lines(stream)
        assert [r["event"] for r in records] == ["lookup failed", "query failed", "chained"]
        assert all("Traceback" in str(r["exception"]) for r in records)


def test_exception_objects_as_values_are_scrubbed(capture: Capture) -> None:
    stream = capture()
    get_logger("tests.logging").warning("failed", error=ValueError("bad number 0401234567"))
    assert lines(stream)[0]["error"] == "ValueError: bad number [phone]"


def test_arbitrary_objects_are_not_rendered(capture: Capture) -> None:
    class Contact:
        def __repr__(self) -> str:
            return "Contact(name='Maija Meikäläinen')"

    stream = capture()
    get_logger("tests.logging").info("ingested", contact=Contact())
    assert "Maija" not in stream.getvalue()
    assert lines(stream)[0]["contact"] == "<Contact>"


def test_contextvars_are_merged_and_scrubbed(capture: Capture) -> None:
    stream = capture()
    request_id = str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(request_id=request_id, email="matti@example.fi", note="0401234567")
    get_logger("tests.logging").info("handled")
    logging.getLogger("uvicorn.error").info("also handled")
    for line in lines(stream):
        assert line["request_id"] == request_id
        assert line["email"] == REDACTED
        assert line["note"] == "[phone]"


# ---------------------------------------------------------------------------------------------------------
# What must survive
# ---------------------------------------------------------------------------------------------------------


def test_ids_timestamps_and_short_numbers_survive(capture: Capture) -> None:
    stream = capture()
    contact_id = uuid.uuid4()
    request_id = str(uuid.UUID("123e4567-e89b-12d3-a456-426614174000"))
    seen_at = "2024-05-01T12:30:45.123456+00:00"
    get_logger("tests.logging").info(
        f"contact {contact_id} stored at {seen_at} after 3 retries",
        contact_id=contact_id,
        request_id=request_id,
        seen_at=seen_at,
        day=date(2024, 5, 1),
        status=200,
        status_text="HTTP 404 after 1500 ms",
        count=123456,
        duration_ms=35.25,
        offsets=[0, 17, 99999],
        digest="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        endpoint="localhost:5432",
        version="1.20.3",
    )
    line = lines(stream)[0]
    assert line["event"] == f"contact {contact_id} stored at {seen_at} after 3 retries"
    assert line["contact_id"] == str(contact_id)
    assert line["request_id"] == request_id
    assert line["seen_at"] == seen_at
    assert line["day"] == "2024-05-01"
    assert line["status"] == 200
    assert line["status_text"] == "HTTP 404 after 1500 ms"
    assert line["count"] == 123456
    assert line["duration_ms"] == 35.25
    assert line["offsets"] == [0, 17, 99999]
    assert line["digest"] == "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert line["endpoint"] == "localhost:5432"
    assert line["version"] == "1.20.3"


# ---------------------------------------------------------------------------------------------------------
# Output format and configuration
# ---------------------------------------------------------------------------------------------------------


def test_json_mode_emits_one_parseable_object_per_line(capture: Capture) -> None:
    stream = capture(service="dsr")
    before = datetime.now(UTC)
    get_logger("tests.logging").info("started", port=8000)
    logging.getLogger("uvicorn.error").warning("stdlib line")
    records = lines(stream)
    assert len(records) == 2
    for record in records:
        assert {"event", "level", "timestamp", "service"} <= record.keys()
        assert record["service"] == "dsr"
        timestamp = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        assert timestamp.utcoffset() is not None
        assert timestamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert timestamp >= before.replace(microsecond=0)
    assert records[0]["event"] == "started"
    assert records[0]["level"] == "info"
    assert records[0]["logger"] == "tests.logging"
    assert records[0]["port"] == 8000
    assert records[1]["level"] == "warning"


def test_service_key_cannot_be_overridden_per_call(capture: Capture) -> None:
    stream = capture(service="ingest")
    get_logger("tests.logging").info("call", service="something-else")
    assert lines(stream)[0]["service"] == "ingest"


def test_console_mode_is_human_readable(capture: Capture) -> None:
    stream = capture(json=False)
    get_logger("tests.logging").info("started", port=8000, phone="0401234567")
    output = stream.getvalue()
    assert "started" in output
    assert "port=8000" in output
    assert "service=ingest" in output
    assert "0401234567" not in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_level_filters_both_structlog_and_stdlib(capture: Capture) -> None:
    stream = capture(level="warning")
    get_logger("tests.logging").info("hidden")
    logging.getLogger("aiokafka").info("hidden too")
    get_logger("tests.logging").warning("shown")
    assert [r["event"] for r in lines(stream)] == ["shown"]


def test_unknown_level_is_refused(capture: Capture) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        capture(level="LOUD")


def test_configuring_twice_does_not_duplicate_output(capture: Capture) -> None:
    root = logging.getLogger()
    capture()
    handlers = len(root.handlers)
    stream = capture()
    assert len(root.handlers) == handlers
    get_logger("tests.logging").info("once")
    logging.getLogger("uvicorn.error").info("once too")
    assert [r["event"] for r in lines(stream)] == ["once", "once too"]


def test_reconfiguring_replaces_the_output(capture: Capture) -> None:
    first = capture(service="ingest")
    second = capture(service="dsr", json=False)
    get_logger("tests.logging").info("where")
    assert first.getvalue() == ""
    assert "service=dsr" in second.getvalue()


def test_get_logger_without_a_name_uses_the_calling_module(capture: Capture) -> None:
    stream = capture()
    get_logger().info("named")
    assert lines(stream)[0]["logger"] == __name__


# ---------------------------------------------------------------------------------------------------------
# The processor on its own
# ---------------------------------------------------------------------------------------------------------


def test_processor_keeps_the_event_name_but_scrubs_its_digits() -> None:
    event = scrub_personal_data(None, "info", {"event": "message from 0401234567", "message": "hei"})
    assert event == {"event": "message from [phone]", "message": REDACTED}


def test_processor_redacts_keys_case_insensitively_and_walks_containers() -> None:
    event = scrub_personal_data(
        None,
        "info",
        {
            "event": "x",
            "Phone": "0401234567",
            "items": ({"email": "a@b.fi", "id": 7}, ["0401234567", 3]),
            "by_number": {"0401234567": 1},
            "flags": {"0401234567"},
        },
    )
    assert event["Phone"] == REDACTED
    assert event["items"] == ({"email": REDACTED, "id": 7}, ["[phone]", 3])
    assert event["by_number"] == {"[phone]": 1}
    assert event["flags"] == ["[phone]"]


def test_processor_formats_and_scrubs_exc_info_itself() -> None:
    try:
        raise ValueError("call 040 123 4567")
    except ValueError as error:
        event = scrub_personal_data(None, "error", {"event": "failed", "exc_info": error})
    assert "exc_info" not in event
    assert "ValueError: call [phone]" in str(event["exception"])


def test_self_referencing_containers_do_not_recurse_forever() -> None:
    loop: list[object] = []
    loop.append(loop)
    event = scrub_personal_data(None, "info", {"event": "x", "loop": loop})
    assert REDACTED in repr(event["loop"])


@given(
    st.sampled_from(["040", "041", "044", "045", "046", "050"]),
    st.from_regex(r"\A[0-9]{7}\Z"),
    st.sampled_from(
        ["{p} {a} {b}", "{p}-{a}{b}", "{p}{a}{b}", "+358 {q} {a} {b}", "+358{q}{a}{b}", "00358{q}{a}{b}"]
    ),
    st.sampled_from(["soita {n}", "{n}", "({n})", "numero: {n}.", "tel:{n}, kiitos"]),
)
def test_generated_mobile_numbers_are_always_scrubbed(
    prefix: str, subscriber: str, shape: str, text: str
) -> None:
    number = shape.format(p=prefix, q=prefix[1:], a=subscriber[:3], b=subscriber[3:])
    scrubbed = scrub_text(text.format(n=number))
    assert "[phone]" in scrubbed
    assert subscriber[3:] not in scrubbed


@given(st.dates(min_value=date(1800, 1, 1), max_value=date(2099, 12, 31)), st.integers(2, 999))
def test_generated_identity_codes_are_always_scrubbed(born: date, individual: int) -> None:
    sign = {18: "+", 19: "-", 20: "A"}[born.year // 100]
    ddmmyy = born.strftime("%d%m") + f"{born.year % 100:02d}"
    code = (
        f"{ddmmyy}{sign}{individual:03d}"
        + "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(f"{ddmmyy}{individual:03d}") % 31]
    )
    assert scrub_text(f"hetu {code}, kiitos") == "hetu [hetu], kiitos"


@given(st.uuids())
def test_generated_uuids_survive(value: uuid.UUID) -> None:
    assert scrub_text(f"id={value}") == f"id={value}"
    assert scrub_text(str(value).upper()) == str(value).upper()
