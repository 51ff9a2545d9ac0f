"""Structured logging for every Sailo process, with personal data scrubbed out of every line.

`configure_logging` sets up structlog and the standard library's logging to share one processor chain and
one handler, so the lines of uvicorn, aiokafka, SQLAlchemy and any other library pass through
`scrub_personal_data` exactly like our own. Output is one JSON object per line in production and
structlog's console format in development.

Scrubbing is defence in depth, not a licence: log identifiers (contact ids, request ids) and never a
contact's data. What the scrubber does:

* the whole value of keys that carry free text or identity (`REDACTED_KEYS`: ``text``, ``name``, ``phone``,
  ...) is replaced with ``"[redacted]"``, at any depth of nested dicts;
* in every other string (the event name, other values, dict keys, the rendered traceback) phone numbers,
  e-mail addresses, Finnish personal identity codes, IBANs, IPv4 addresses and long digit runs (payment
  cards) are replaced with ``"[phone]"``, ``"[email]"``, ``"[hetu]"``, ``"[iban]"``, ``"[ip]"`` and
  ``"[number]"``;
* values that are not str, int, float, bool, None, containers of these, UUIDs, dates/times, enums or
  exceptions are rendered as ``"<TypeName>"``: an object's repr is where a name or a chat text hides
  (a pydantic model of a contact, say), and no pattern can find a name. Log its fields instead.

UUIDs, ISO dates and timestamps, hex digests and numbers of up to six digits (status codes, counts,
durations, ports) survive. Any run of seven or more digits, possibly with separators, is treated as a phone
number, so an epoch timestamp or a seven-digit count inside a *string* is scrubbed too (int and float
values are left alone).

Lines from libraries (the standard library's logging) keep only their message template: the arguments a
library interpolates are the data it was handling (a Kafka message, an SQL parameter).

Known ways around it: a library that installs its own handler (SQLAlchemy's ``echo=True``; uvicorn when run
with its default ``log_config``) writes past this module. Create engines with ``echo=False`` (set the
``sqlalchemy.engine`` logger's level instead) and run uvicorn with ``log_config=None``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "REDACTED_KEYS",
    "configure_logging",
    "get_logger",
    "scrub_personal_data",
    "scrub_text",
]

REDACTED: Final = "[redacted]"

# Keys whose whole value is replaced, compared case-insensitively, at any depth.
REDACTED_KEYS: Final[frozenset[str]] = frozenset(
    {
        "text",
        "message",
        "message_text",
        "body",
        "content",
        "name",
        "nickname",
        "caller_number",
        "callee_number",
        "phone",
        "email",
        "personal_identity_code",
        "answer",
        "answers",
        "subject",
        "ip",
        "ip_address",
        # Obvious synonyms of the above.
        "phone_number",
        "email_address",
        "hetu",
        "first_name",
        "last_name",
        "full_name",
        "transcript",
    }
)

# The event name is pattern-scrubbed but never redacted wholesale; these structlog/stdlib internals are
# passed through untouched (ProcessorFormatter removes them before rendering).
_EVENT_KEY: Final = "event"
_PASS_THROUGH_KEYS: Final = frozenset({"_record", "_from_structlog"})

# Containers nested deeper than this are replaced rather than walked (and self-references cannot recurse).
_MAX_DEPTH: Final = 8

# ---------------------------------------------------------------------------------------------------------
# Patterns. One alternation, one pass over the string: at each position the alternatives are tried in
# order, so the protected shapes (UUIDs, timestamps, hex digests) win over the digit-run alternative, and
# e-mail, personal identity code and IBAN win over a phone number that is part of them.
# ---------------------------------------------------------------------------------------------------------

_NOT_AFTER_ALNUM = r"(?<![0-9A-Za-z])"
_NOT_BEFORE_ALNUM = r"(?![0-9A-Za-z])"

_EMAIL = r"(?<![\w.%+'\-])[\w.%+'\-]+@[\w\-]+(?:\.[\w\-]+)*"
_HETU = _NOT_AFTER_ALNUM + r"\d{6}[-+A-FU-Ya-fu-y]\d{3}[0-9A-Za-z]" + _NOT_BEFORE_ALNUM
_IBAN = _NOT_AFTER_ALNUM + r"[A-Z]{2}\d{2}(?: ?[0-9A-Z]{4}){2,7}(?: ?[0-9A-Z]{1,3})?" + _NOT_BEFORE_ALNUM
_UUID = (
    _NOT_AFTER_ALNUM
    + r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    + _NOT_BEFORE_ALNUM
)
_TIMESTAMP = (
    r"(?<!\d)\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
    r"(?!\d)"
)
# A hex token of 16+ characters with at least one letter: digests, trace and span ids.
_HEX = _NOT_AFTER_ALNUM + r"(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{16,}" + _NOT_BEFORE_ALNUM
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = r"(?<![\d.])" + rf"(?:{_OCTET}\.){{3}}{_OCTET}" + r"(?!\d|\.\d)"
# A run of digits with the separators phone numbers are written with: single spaces, dashes, slashes,
# parentheses ("(09) 1234 5678", "+358 (0)40 123 4567"). Not dots, so decimals stay apart; the
# look-arounds keep the fractional part of a decimal number out too. Classified by _classify_digits.
_SEPARATOR = r"(?:[ \u00a0]?[-/][ \u00a0]?|[ \u00a0]|\)[ \u00a0]?|[ \u00a0]?\()"
# Dotted spellings ("040.123.4567", "+358.40.123.4567") only with a phone-like prefix, so decimals and
# version numbers are not caught.
_DOTTED_PHONE = r"(?<![\d.])(?:\+\d{1,3}|0\d{1,3})(?:\.\d{2,4}){2,4}(?!\d|\.\d)"
_DIGITS = r"(?<!\d)(?<!\d\.)(?:\+|\(\+?)?\d(?:" + _SEPARATOR + r"?\d)*(?!\d)(?!\.\d)"

_PATTERN: Final = re.compile(
    "|".join(
        f"(?P<{name}>{pattern})"
        for name, pattern in (
            ("email", _EMAIL),
            ("hetu", _HETU),
            ("iban", _IBAN),
            ("uuid", _UUID),
            ("timestamp", _TIMESTAMP),
            ("hex", _HEX),
            ("ip", _IPV4),
            ("dotted", _DOTTED_PHONE),
            ("digits", _DIGITS),
        )
    )
)
# Every alternative needs a digit or an "@": strings without either skip the big pattern.
_TRIGGER: Final = re.compile(r"[\d@]")

_REPLACEMENTS: Final[dict[str, str]] = {
    "email": "[email]",
    "hetu": "[hetu]",
    "iban": "[iban]",
    "ip": "[ip]",
}
_PROTECTED: Final = frozenset({"uuid", "timestamp", "hex"})

_MIN_PHONE_DIGITS: Final = 7
_MAX_NATIONAL_PHONE_DIGITS: Final = 12  # longer runs without a "+" or "0" prefix look like card numbers
_MAX_PREFIXED_PHONE_DIGITS: Final = 15  # E.164 maximum


def _classify_digits(run: str) -> str:
    digits = sum(ch.isdecimal() for ch in run)
    if digits < _MIN_PHONE_DIGITS:
        return run
    head = run.lstrip("(")
    if head.startswith("+"):
        return "[phone]"
    if head.startswith("0") and digits <= _MAX_PREFIXED_PHONE_DIGITS:
        return "[phone]"
    if digits <= _MAX_NATIONAL_PHONE_DIGITS:
        return "[phone]"
    return "[number]"


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind is None or kind in _PROTECTED:
        return match.group()
    if kind in ("digits", "dotted"):
        return _classify_digits(match.group())
    return _REPLACEMENTS[kind]


def scrub_text(text: str) -> str:
    """Replace phone numbers, e-mail addresses, identity codes, IBANs, IP addresses and card-like digit
    runs in *text* with placeholders (see the module docstring)."""
    if not _TRIGGER.search(text):
        return text
    return _PATTERN.sub(_replace, text)


def _is_redacted_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in REDACTED_KEYS


def _scrub_key(key: object) -> object:
    if isinstance(key, str):
        return scrub_text(key)
    if key is None or isinstance(key, int | float):
        return key
    return f"<{type(key).__name__}>"


def _scrub_value(value: object, depth: int) -> object:
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return _scrub_value(value.value, depth)
    if depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            _scrub_key(k): REDACTED if _is_redacted_key(k) else _scrub_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, tuple):
        return tuple(_scrub_value(item, depth + 1) for item in value)
    if isinstance(value, list | set | frozenset):
        return [_scrub_value(item, depth + 1) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, BaseException):
        try:
            return f"{type(value).__name__}: {scrub_text(str(value))}"
        except Exception:  # a broken __str__ must not break logging
            return f"<{type(value).__name__}>"
    return f"<{type(value).__name__}>"


def scrub_personal_data(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: remove personal data from *event_dict* (see the module docstring).

    An ``exc_info`` still in the dict is rendered first, so the traceback text is scrubbed like any other
    string whatever the processor order.
    """
    if "exc_info" in event_dict:
        event_dict = structlog.processors.format_exc_info(logger, method_name, event_dict)
    for key, value in event_dict.items():
        if key in _PASS_THROUGH_KEYS:
            continue
        if key != _EVENT_KEY and _is_redacted_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(value, 0)
    return event_dict


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------

# Loggers of libraries we use that may have handlers of their own (uvicorn's default configuration) or
# propagation switched off: configure_logging routes them to the root handler.
_LIBRARY_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "aiokafka",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "alembic",
    "asyncio",
    "httpx",
    "httpcore",
)


class _State:
    service: str = "unknown"


def _library_template_only(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """A library's line keeps its message template and drops the arguments interpolated into it.

    The arguments are where a library puts the data it handles: aiokafka's debug line "Sending (key=%r
    value=%r)" would carry a whole chat message, and no pattern can find a name in it. The template is the
    library's own text, so what happened is still told.
    """
    record = event_dict.get("_record")
    # structlog has interpolated the arguments (and emptied record.args) by now: a message that differs from
    # its template had arguments.
    if isinstance(record, logging.LogRecord) and isinstance(record.msg, str):
        event_dict[_EVENT_KEY] = record.msg
    return event_dict


def _add_service(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # Overrides a "service" passed by a caller: the key says which process wrote the line.
    event_dict["service"] = _State.service
    return event_dict


class _SailoHandler(logging.StreamHandler[TextIO]):
    """The one root handler configure_logging installs (the class marks it, for idempotence)."""

    def handleError(self, record: logging.LogRecord) -> None:
        # The stdlib version prints the record's message and arguments to stderr: unscrubbed personal data.
        if logging.raiseExceptions:
            exc_type = sys.exc_info()[0]
            name = exc_type.__name__ if exc_type is not None else "unknown error"
            with contextlib.suppress(Exception):  # nothing left to report to
                sys.stderr.write(f"--- Logging error ({name}) in a record from {record.name!r} ---\n")


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def configure_logging(
    *, service: str, level: str = "INFO", json: bool = True, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's logging for a Sailo process.

    *service* is written as ``service`` on every line. *json* selects one JSON object per line (production)
    or structlog's console format (development). Lines go to *stream*, standard output by default.

    Calling it again replaces the previous configuration (one handler, never two).
    """
    level_number = _level_number(level)
    _State.service = service
    output = stream if stream is not None else sys.stdout

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.filter_by_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        _add_service,
        timestamper,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        scrub_personal_data,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    # For records from the standard library (other libraries, or logging.getLogger() in our own code).
    foreign_pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _library_template_only,
        _add_service,
        timestamper,
        structlog.processors.format_exc_info,
        scrub_personal_data,
    ]
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        # Exceptions arrive already formatted (and scrubbed) as text; never let a pretty formatter render
        # exc_info itself, as Rich would with the local variables of every frame.
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(output), exception_formatter=structlog.dev.plain_traceback
        )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=foreign_pre_chain,
    )

    handler = _SailoHandler(output)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _SailoHandler)]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(level_number)

    for name in _LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        for existing in list(library_logger.handlers):
            library_logger.removeHandler(existing)
        library_logger.propagate = True

    structlog.configure(
        processors=structlog_chain,
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__]),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger; *name* defaults to the calling module's name."""
    if name is None:
        return structlog.stdlib.get_logger()
    return structlog.stdlib.get_logger(name)
