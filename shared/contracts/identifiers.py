"""Normalisation and validation of the identifiers a data subject can be found by.

Ingest uses these functions before it computes a blind index for a contact, and the data-subject-request
service uses the very same functions on the identifiers a requester gives, so that "040 123 4567" and
"+358401234567" lead to the same index entry.

Every function takes untrusted text and either returns the canonical form or raises `IdentifierError`.
The error never carries the input: its message is a short, fixed, PII-free reason, it is raised
``from None`` (so no chained exception can echo the input either) and it is safe to log.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date
from typing import Final

import phonenumbers

__all__ = [
    "IdentifierError",
    "normalise_email",
    "normalise_identifier",
    "normalise_name",
    "normalise_nickname",
    "normalise_phone",
    "personal_identity_code_check_character",
    "validate_business_id",
    "validate_personal_identity_code",
]


class IdentifierError(ValueError):
    """An identifier could not be normalised or failed validation.

    ``reason`` is a short explanation that never contains the rejected value (nor any part of it), so the
    exception can be logged and returned to API clients as is.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Inputs longer than this are rejected before any parsing, so a hostile payload cannot make us do real work.
_MAX_PHONE_LENGTH: Final = 64
_MAX_EMAIL_LENGTH: Final = 254
_MAX_EMAIL_LOCAL_LENGTH: Final = 64
_MAX_NAME_LENGTH: Final = 512

# ---------------------------------------------------------------------------------------------------------
# Phone numbers
# ---------------------------------------------------------------------------------------------------------

# Digits and the punctuation people put between them. Letters are refused outright: phonenumbers would
# otherwise read "1-800-FLOWERS" as a vanity number and silently drop trailing garbage such as "040 1234567a"
# or an extension, and E.164 cannot represent an extension anyway.
_PHONE_CHARACTERS: Final = re.compile(r"[+0-9\s().\-/]+")
_TEL_URI_PREFIX: Final = re.compile(r"tel:", re.IGNORECASE)


def normalise_phone(raw: str, *, default_region: str = "FI") -> str:
    """Return *raw* as an E.164 number ("+358401234567").

    Accepts the usual spellings: national ("040 123 4567", "(09) 1234 5678"), international with "+" or the
    "00" prefix ("+358 40 1234567", "00358401234567", "+46 70 123 45 67", "+358 (0)40 123 4567"), an
    optional "tel:" prefix, and spaces, dashes, dots, slashes and parentheses between the digits. National
    numbers are read in *default_region* (an ISO 3166-1 alpha-2 code, Finland by default).

    The number must be valid according to libphonenumber's metadata, not merely of a possible length:
    Finnish national service numbers such as "029 509 5000" and "0295 53 6000" are valid; "040 123" and
    "+358 00 000 0000" are not. Letters (vanity numbers) and extensions are rejected.
    """
    if not isinstance(raw, str):
        raise IdentifierError("phone number must be text")
    text = raw.strip()
    if _TEL_URI_PREFIX.match(text):
        text = text[4:].strip()
    if not text:
        raise IdentifierError("phone number is empty")
    if len(text) > _MAX_PHONE_LENGTH:
        raise IdentifierError("phone number is too long")
    if not _PHONE_CHARACTERS.fullmatch(text):
        raise IdentifierError("phone number contains characters other than digits and separators")
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException:
        raise IdentifierError("not a valid phone number") from None
    if number.extension:
        raise IdentifierError("phone number extensions are not supported")
    if not phonenumbers.is_valid_number(number):
        raise IdentifierError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ---------------------------------------------------------------------------------------------------------
# Finnish personal identity code (henkilötunnus)
# ---------------------------------------------------------------------------------------------------------

_HETU_CHECK_CHARACTERS: Final = "0123456789ABCDEFHJKLMNPRSTUVWXY"

# Century signs, including the additional ones introduced by the 2023 reform (in use from 2023-01-01).
_HETU_CENTURIES: Final[dict[str, int]] = {
    "+": 1800,
    "-": 1900,
    "Y": 1900,
    "X": 1900,
    "W": 1900,
    "V": 1900,
    "U": 1900,
    "A": 2000,
    "B": 2000,
    "C": 2000,
    "D": 2000,
    "E": 2000,
    "F": 2000,
}

# DDMMYY, century sign, ZZZ, check character. The check character group is deliberately wider than the
# table (any letter or digit) so a wrong one is reported as a mismatch, not as a format error.
_HETU_PATTERN: Final = re.compile(r"(\d{2})(\d{2})(\d{2})([-+A-FU-Y])(\d{3})([0-9A-Z])", re.ASCII)


def personal_identity_code_check_character(digits: str) -> str:
    """The check character for the nine digits DDMMYYZZZ of a personal identity code."""
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        raise IdentifierError("expected the nine digits of a personal identity code")
    return _HETU_CHECK_CHARACTERS[int(digits) % 31]


def validate_personal_identity_code(raw: str) -> str:
    """Validate a Finnish personal identity code (henkilötunnus) and return its canonical, upper-case form.

    The format is DDMMYYCZZZQ:

    * DDMMYY is the date of birth and must be a real calendar date in the century given by C;
    * C is the century sign: "+" for the 1800s, "-", "Y", "X", "W", "V" or "U" for the 1900s and
      "A", "B", "C", "D", "E" or "F" for the 2000s (the additional signs came with the 2023 reform);
    * ZZZ is the individual number, 002-899 for ordinary codes. 900-999 are temporary identifiers assigned
      by e.g. hospitals and employers before a permanent code exists; they are accepted because a data
      subject may well be recorded under one. 000 and 001 are never assigned and are rejected;
    * Q is the check character: the nine-digit number DDMMYYZZZ modulo 31 indexes
      "0123456789ABCDEFHJKLMNPRSTUVWXY".

    Surrounding whitespace is ignored and lower-case letters are accepted. A date of birth in the future is
    not rejected (that would make the result depend on the clock).
    """
    if not isinstance(raw, str):
        raise IdentifierError("personal identity code must be text")
    text = raw.strip().upper()
    match = _HETU_PATTERN.fullmatch(text)
    if match is None:
        raise IdentifierError("not a valid personal identity code format")
    day, month, year, sign, individual, check = match.groups()
    try:
        date(_HETU_CENTURIES[sign] + int(year), int(month), int(day))
    except ValueError:
        raise IdentifierError("date of birth is not a real date") from None
    if int(individual) < 2:
        raise IdentifierError("individual number is not in use")
    if personal_identity_code_check_character(day + month + year + individual) != check:
        raise IdentifierError("check character does not match")
    return text


# ---------------------------------------------------------------------------------------------------------
# E-mail addresses
# ---------------------------------------------------------------------------------------------------------

_DOMAIN_LABEL: Final = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")


def normalise_email(raw: str) -> str:
    """Return the form of an e-mail address used for matching and for the blind index.

    Surrounding whitespace is trimmed and the text NFC-normalised. The domain is case-insensitive by
    definition; the local part formally is not, but no mail system in practice treats "Matti.M" and
    "matti.m" as different mailboxes and people type them inconsistently, so the whole address is
    lower-cased: the result is for comparison and indexing, not for sending mail (keep the original for that).

    Rejected: no "@", an empty local part or domain, whitespace or control characters anywhere, a domain
    that is not a dot-separated list of letter/digit/hyphen labels, and over-long addresses.
    """
    if not isinstance(raw, str):
        raise IdentifierError("e-mail address must be text")
    text = unicodedata.normalize("NFC", raw.strip())
    if not text:
        raise IdentifierError("e-mail address is empty")
    if len(text) > _MAX_EMAIL_LENGTH:
        raise IdentifierError("e-mail address is too long")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in text):
        raise IdentifierError("e-mail address contains spaces or control characters")
    local, at, domain = text.rpartition("@")
    if not at:
        raise IdentifierError("e-mail address has no @")
    if not local:
        raise IdentifierError("e-mail address has an empty local part")
    if len(local) > _MAX_EMAIL_LOCAL_LENGTH:
        raise IdentifierError("e-mail address local part is too long")
    if not domain:
        raise IdentifierError("e-mail address has an empty domain")
    if not all(_DOMAIN_LABEL.fullmatch(label) for label in domain.split(".")):
        raise IdentifierError("e-mail address domain is not valid")
    return f"{local.lower()}@{domain.lower()}"


# ---------------------------------------------------------------------------------------------------------
# Finnish business id (Y-tunnus)
# ---------------------------------------------------------------------------------------------------------

_BUSINESS_ID_PATTERN: Final = re.compile(r"(\d{6,7})-(\d)", re.ASCII)
_BUSINESS_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2)


def validate_business_id(raw: str) -> str:
    """Validate a Finnish business id (Y-tunnus) NNNNNNN-C and return it in canonical form.

    The check digit C is computed from the seven digits with the weights 7, 9, 10, 5, 8, 4, 2: remainder 0
    gives check digit 0, remainder 1 is never assigned (invalid), otherwise the check digit is 11 - remainder.
    Old business ids written with six digits get the leading zero they officially have ("123456-7" is
    "0123456-7"). Surrounding whitespace is ignored.
    """
    if not isinstance(raw, str):
        raise IdentifierError("business id must be text")
    match = _BUSINESS_ID_PATTERN.fullmatch(raw.strip())
    if match is None:
        raise IdentifierError("not a valid business id format")
    digits, check = match.group(1).zfill(7), int(match.group(2))
    remainder = sum(int(d) * w for d, w in zip(digits, _BUSINESS_ID_WEIGHTS, strict=True)) % 11
    if remainder == 1:
        raise IdentifierError("business id number has no valid check digit")
    if (0 if remainder == 0 else 11 - remainder) != check:
        raise IdentifierError("check digit does not match")
    return f"{digits}-{check}"


# ---------------------------------------------------------------------------------------------------------
# Names and nicknames
# ---------------------------------------------------------------------------------------------------------


def _collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def normalise_name(raw: str) -> str:
    """Return the matching form of a person's name: NFC, case-folded, whitespace collapsed to single spaces.

    "  MATTI   Meikäläinen " and "matti meikäläinen" (with a decomposed "ä") give the same result. Letters
    are otherwise kept as they are: "Meikäläinen" and "Meikalainen" stay different names.
    """
    if not isinstance(raw, str):
        raise IdentifierError("name must be text")
    if len(raw) > _MAX_NAME_LENGTH:
        raise IdentifierError("name is too long")
    # Case folding can decompose characters, hence NFC both before and after it.
    folded = unicodedata.normalize("NFC", raw).casefold()
    text = _collapse_whitespace(unicodedata.normalize("NFC", folded))
    if not text:
        raise IdentifierError("name is empty")
    return text


# Zero-width and other invisible format characters (category Cf) that nicknames often carry.
def _drop_format_characters(text: str) -> str:
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def normalise_nickname(raw: str) -> str:
    """Return the matching form of a chat nickname.

    Like `normalise_name`, but with compatibility normalisation (NFKC) instead of NFC, so the stylised
    letters people use in nicknames (mathematical script or full-width letters) match their plain spelling;
    invisible format characters (zero-width spaces and joiners) are dropped and a leading "@" (a handle) is
    removed.
    """
    if not isinstance(raw, str):
        raise IdentifierError("nickname must be text")
    if len(raw) > _MAX_NAME_LENGTH:
        raise IdentifierError("nickname is too long")
    text = unicodedata.normalize("NFKC", _drop_format_characters(raw))
    text = _collapse_whitespace(unicodedata.normalize("NFKC", text.casefold()))
    text = text.removeprefix("@").lstrip()
    if not text:
        raise IdentifierError("nickname is empty")
    return text


def normalise_identifier(kind: str, raw: str) -> str:
    """The form a customer identifier of `kind` is blind-indexed in (what ingest indexes, so a data subject's
    request or a legal hold finds the contact); raises IdentifierError for an unknown kind or a bad value."""
    normalisers: dict[str, Callable[[str], str]] = {
        "phone": normalise_phone,
        "email": normalise_email,
        "personal_identity_code": validate_personal_identity_code,
        "name": normalise_name,
        "nickname": normalise_nickname,
        "contact_id": str,
    }
    normalise = normalisers.get(kind)
    if normalise is None:
        raise IdentifierError(f"unknown identifier kind; one of {', '.join(sorted(normalisers))}")
    return normalise(raw)
