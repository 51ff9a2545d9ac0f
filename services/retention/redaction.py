"""Numeric identifiers in chatbot text: where they are, and the text with them redacted.

PRH's 2021 privacy notice promises that numeric identifying data a customer types into the chatbot ("such as a
telephone number") is deleted automatically within one hour, while the conversation itself is kept for up to
two years. So the identifiers are cut out of the message and the rest stays readable:
"Soita 040 123 4567" becomes "Soita [redacted: phone]".

`find_identifiers` returns where the identifiers are; `redact` replaces each with ``[redacted: <kind>]`` and
counts the kinds. Both are pure functions of the text. The kinds:

* ``phone``: a run of digits that starts like a phone number: "+", "00" and a country code, or the national
  trunk prefix "0" ("040 123 4567", "(09) 123 4567", "+358 (0)40 123 4567", "00358 40 123 4567",
  "+46 70 123 45 67", "040.123.4567"), with at least seven digits. Validity by libphonenumber is not
  required: a Swedish national number read in Finland, or a mistyped one, is still a phone number. It is used
  only to split a run too long to be one number ("040 1234567 050 7654321") into the numbers it holds.
* ``personal_id``: anything shaped like a Finnish personal identity code, DDMMYY, a century sign (+, -, the
  2023 signs Y X W V U and B C D E F, and A), three digits and a check character, in either letter case,
  *whatever the check character and the date*: a mistyped code is still a person's code. Without its check
  character ("010190-123") it counts when DDMM is a possible day and month. Swedish personnummer
  ("19900101-1234", "900101-1234") are personal ids too.
* ``business_id``: a Y-tunnus (FO-nummer) "1234567-8", also a six-digit legacy one "123456-7", a dash
  with spaces around it, and the VAT form "FI12345678". The check digit is not verified, for the same reason.
  A Swedish organisationsnummer ("556677-8899": the month digits are 20 or more) is a business id too.
* ``iban``: a country code of an IBAN country, two check digits and the account part, with or without spaces.
  The mod-97 check is not required: a mistyped account number is still one. It only decides where the IBAN
  ends: a correct one is cut at its country's length, so words or an amount written right after it stay; one
  that fails the check also takes the rest of the digit run it was cut from.
* ``card``: 13-19 digits not starting with 0, contiguous or with spaces or dashes, that pass the Luhn check or
  are grouped like a card number (4-4-4-4, 4-4-4-4-3, 4-6-5). Anything else of that length is a ``number``:
  the digits are redacted either way, only the label differs.
* ``number``: every other run of six or more digits (customer, case and reference numbers, a date of birth
  typed as "010190"), and creditor references "RF18 5390 0754 7034". Six, because five-digit runs are
  postal codes and four-digit runs years, and both are part of what the customer asks about.

Digits in a run may be separated by single spaces, dashes, slashes and parentheses; a dot or comma ends a run,
so decimals and dotted dates never join into one. What stays, because it is not an identifier and the
conversation needs it: dates ("12.3.2026", "2026-03-12", "12/2024"), times ("klo 14.30", "ma-pe 9-16"), prices
and amounts with a currency ("12,50 €", "1 250 000 euroa"), round quantities ("100 000 yritystä"), years and
year ranges ("2023-2024"), postal codes with the street number before them ("Mannerheimintie 5 00100
Helsinki") and every number of up to five digits. The bias is towards redacting: a thousands-grouped count
that is not round ("1 234 567 osaketta") is redacted as a number.

Overlaps: IBANs, personal ids and business ids are looked for first (in that order of precedence, the longer
match winning within a kind); the digits they do not cover are then read as runs. So the more specific match
always wins, and no digit of a removed identifier is left in the text.

Limits: an identifier glued to the word or number before it ("tiliGB29NWBK...", "2024010190-123N") is not
recognised by its shape; its long digit runs are still redacted as numbers, but short parts (the check digits of such an
IBAN) may stay. A short number written right after a phone number with only a space between them ("040 123
4567 2 kpl") is redacted with it, because Finnish mobile numbers vary in length.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import phonenumbers

__all__ = ["IdentifierKind", "Match", "find_identifiers", "placeholder", "redact"]


class IdentifierKind(StrEnum):
    """What a redacted identifier was; the value is the label in the redacted text."""

    PHONE = "phone"
    PERSONAL_ID = "personal_id"
    BUSINESS_ID = "business_id"
    IBAN = "iban"
    CARD = "card"
    NUMBER = "number"


@dataclass(frozen=True, slots=True)
class Match:
    """One identifier: ``text[start:end]`` is what gets redacted."""

    kind: IdentifierKind
    start: int
    end: int


def placeholder(kind: IdentifierKind) -> str:
    """The text that replaces an identifier of *kind*; it holds no digit, so redacting twice changes nothing."""
    return f"[redacted: {kind.value}]"


# ---------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------

_SPACE_CHARACTERS: Final = " \u00a0\u202f"  # also the no-break spaces word processors put in numbers
_SPACE: Final = f"[{_SPACE_CHARACTERS}]"
_DASH: Final = r"[\-\u2010-\u2013\u2212]"  # hyphen, non-breaking hyphen, figure and en dash, minus
# Between two digits of one run: a space, a dash or slash (spaces around allowed), or parentheses
# ("(09) 123 4567", "+358 (0)40 ...").
_RUN_SEPARATOR: Final = rf"(?:{_SPACE}?(?:{_DASH}|/){_SPACE}?|{_SPACE}|\){_SPACE}?|{_SPACE}?\()"
# A dot or comma ends a run but does not undo it: "040 123 4567.5" still loses its phone number. Decimals
# stay because dates, times and amounts are set aside before runs are read, and others are short.
_RUN: Final = re.compile(rf"(?<!\d)(?:\+|\(\+?)?\d(?:{_RUN_SEPARATOR}?\d)*")
_RUN_CONTINUATION: Final = re.compile(rf"(?:{_RUN_SEPARATOR}?\d)+")
_DIGIT_GROUP: Final = re.compile(r"\d+")
_HOURS_OR_YEAR: Final = re.compile(rf"\d{{1,2}}{_SPACE}?{_DASH}{_SPACE}?\d{{1,2}}|(?:19|20)\d{{2}}")
# A dotted phone number needs a phone prefix, so version numbers and decimals are not read as one.
_DOTTED_PHONE: Final = re.compile(r"(?<![\d.])(?:\+\d{1,3}|0\d{1,3})(?:\.\d{2,4}){2,4}(?!\.?\d)")

_MIN_NUMBER_DIGITS: Final = 6
_MIN_PHONE_DIGITS: Final = 7
_MAX_NATIONAL_PHONE_DIGITS: Final = 12  # "045 1234 5678", with the trunk prefix
_MAX_E164_DIGITS: Final = 15
_CARD_DIGITS: Final = range(13, 20)

# Mask for text already accounted for: not a digit, separator or letter, so runs cannot reach across it.
_MASK: Final = "\x00"

# ---------------------------------------------------------------------------------------------------------
# Specific identifiers
# ---------------------------------------------------------------------------------------------------------

_PERSONAL_ID: Final = re.compile(
    rf"(?P<birth>\d{{6}})(?:(?P<sign>[A-FU-Y])|{_SPACE}?(?P<sign_mark>[-+]){_SPACE}?)\d{{3}}"
    r"(?P<check>[0-9A-Z])?(?!\d)",
    re.IGNORECASE,
)
_SWEDISH_PERSONNUMMER: Final = re.compile(r"(?<!\d)(?:18|19|20)\d{6}[-+]\d{4}(?!\d)")
_BUSINESS_ID: Final = re.compile(rf"(?<!\d)\d{{6,7}}{_SPACE}?{_DASH}{_SPACE}?\d(?!\d)")
_VAT_NUMBER: Final = re.compile(rf"(?<![0-9A-Za-z])FI(?:{_SPACE}|-)?\d{{8}}(?!\d)", re.IGNORECASE)

# An IBAN or creditor reference is matched character by character with optional single separators, then cut
# back to its length, so trailing words or amounts do not stick to it.
_ALPHANUMERIC_RUN: Final = rf"(?:{_SPACE}?[0-9A-Za-z])"
_IBAN: Final = re.compile(
    rf"(?<![0-9A-Za-z])(?P<country>[A-Za-z]{{2}})(?P<space>{_SPACE})?(?P<check>\d{{2}})"
    rf"{_ALPHANUMERIC_RUN}{{10,32}}"
)
_CREDITOR_REFERENCE: Final = re.compile(
    rf"(?<![0-9A-Za-z])RF(?P<check>\d{{2}}){_ALPHANUMERIC_RUN}{{1,21}}", re.IGNORECASE
)
_CREDITOR_REFERENCE_MAX_LENGTH: Final = 25
# IBAN lengths by country (SWIFT IBAN registry).
_IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
# Countries whose account part starts with a bank code of four letters.
_IBAN_BANK_CODE_LETTERS: Final = frozenset(
    {"AZ", "BG", "BH", "DO", "GB", "GI", "IE", "IQ", "JO", "KW", "LC", "LV", "MT", "MU", "NL", "PK", "PS", "QA",
     "RO", "SC", "SV", "VG"}
)  # fmt: skip
# Countries whose account part is digits only: a letter ends it ("FI2112345600000785ja", "se12 SE45 ...").
_IBAN_DIGITS_ONLY: Final = frozenset(
    {"AE", "AT", "BA", "BE", "CZ", "DE", "DK", "EE", "EG", "ES", "FI", "FO", "GL", "HR", "HU", "IL", "IS", "LT",
     "LY", "ME", "NO", "PL", "PT", "RS", "SD", "SE", "SI", "SK", "TL", "TN", "XK"}
)  # fmt: skip
# A mistyped IBAN may miss a group; shorter than this it is left to the digit runs.
_IBAN_TOLERATED_MISSING: Final = 4
_DIGITS_WITH_SPACES: Final = re.compile(rf"(?:{_SPACE}?\d)+")
_IBAN_MIN_ACCOUNT_DIGITS: Final = 8

# Precedence when specific matches overlap: the lower rank wins, then the longer match.
_SPECIFIC_RANK: Final[dict[IdentifierKind, int]] = {
    IdentifierKind.IBAN: 0,
    IdentifierKind.PERSONAL_ID: 1,
    IdentifierKind.BUSINESS_ID: 2,
    IdentifierKind.NUMBER: 3,
}

# ---------------------------------------------------------------------------------------------------------
# What stays
# ---------------------------------------------------------------------------------------------------------

_DAY: Final = r"(?:0?[1-9]|[12]\d|3[01])"
_MONTH: Final = r"(?:0?[1-9]|1[0-2])"
_YEAR: Final = r"(?:1[89]|20)\d{2}"
# Dates may cut into a digit run: "2026-03-12 040 1234567" keeps its date and loses its phone number.
_DATES: Final = (
    re.compile(rf"(?<![\d.]){_DAY}\.{_MONTH}\.(?:(?:19|20)?\d{{2}}(?!\d))?"),
    re.compile(rf"(?<![\d/]){_DAY}/{_MONTH}/(?:19|20)?\d{{2}}(?![\d/])"),
    re.compile(
        rf"(?<!\d){_YEAR}(?P<separator>[-/.]){_MONTH}(?P=separator){_DAY}(?!\d)"
        rf"(?:[T ]\d{{1,2}}[:.]\d{{2}}(?:[:.]\d{{2}})?)?"
    ),
)
_CURRENCY_AFTER: Final = (
    r"(?:€|\$|£|e(?![a-zåäö])|eur(?:o|oa|os|on)?(?![a-zåäö])|euro\w*|snt|senttiä"
    r"|kr(?![a-zåäö])|kronor|sek(?![a-zåäö])|usd(?![a-zåäö])|mk(?![a-zåäö])|markkaa)"
)
_CURRENCY_BEFORE: Final = r"(?:€|\$|£|eur|sek|usd)"
# Amounts of at most twelve digits, none starting with 0: a card number has more, a phone number starts with 0.
_INTEGER_AMOUNT: Final = rf"(?:[1-9]\d{{0,2}}(?:[{_SPACE_CHARACTERS}.]\d{{3}}){{1,3}}|[1-9]\d{{0,8}}|0)"
_AMOUNT_NUMBER: Final = rf"{_INTEGER_AMOUNT}(?:[,.]\d{{1,2}}|,-)?"
# These may only take a whole digit run: "100 000 €" stays, "4111 1111 1111 1111 000 €" does not.
_WHOLE_RUNS: Final = (
    re.compile(rf"{_AMOUNT_NUMBER}{_SPACE}?{_CURRENCY_AFTER}", re.IGNORECASE),
    re.compile(rf"{_CURRENCY_BEFORE}{_SPACE}?{_AMOUNT_NUMBER}", re.IGNORECASE),
    # Round quantities: "100 000 yritystä", "1 000 000".
    re.compile(rf"[1-9]\d{{0,2}}(?:{_SPACE}\d{{3}})*{_SPACE}000(?![.,]\d)"),
    # Years and year ranges: "2023-2024", "2023-24", "2023/2024", "2022 2023".
    re.compile(rf"{_YEAR}(?:(?:{_SPACE}?{_DASH}{_SPACE}?|/)(?:{_YEAR}|\d{{2}})|{_SPACE}{_YEAR})+"),
    # Months and month ranges: "12/2024", "07/2024-06/2025".
    re.compile(rf"(?<![\d/]){_MONTH}/{_YEAR}(?:{_SPACE}?{_DASH}{_SPACE}?{_MONTH}/{_YEAR})?(?![\d/])"),
    # A decimal number without a currency: "12345678,90".
    re.compile(rf"{_INTEGER_AMOUNT}[,.]\d{{1,2}}(?!\d)(?!\.\d)"),
    # A statute number after the word for an act or decree: "osakeyhtiölaki (624/2006)", "lagen 564/2023".
    re.compile(
        r"(?:laki|lain|lakia|lakiin|laissa|asetus|asetuksen|asetuksessa|lag|lagen|förordning|förordningen)"
        rf"{_SPACE}?\(?\d{{1,4}}/{_YEAR}",
        re.IGNORECASE,
    ),
    # A postal code before a place name, with the street or box number that may precede it:
    # "Mannerheimintie 5 00100 Helsinki", "PL 1234 00101 Helsinki", "Drottninggatan 5 111 51 Stockholm".
    re.compile(
        rf"(?:[1-9]\d{{0,3}}(?:{_DASH}[1-9]\d{{0,3}})?{_SPACE})?(?:\d{{5}}|\d{{3}}{_SPACE}\d{{2}})"
        rf"(?={_SPACE}+[A-ZÅÄÖ][a-zåäö]{{2,}})"
    ),
)

_DIGIT: Final = re.compile(r"\d")


# ---------------------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------------------


def find_identifiers(text: str) -> list[Match]:
    """The numeric identifiers in *text*, in order and without overlaps (see the module docstring)."""
    if not _DIGIT.search(text):
        return []
    specific = _select(_specific_candidates(text))
    masked = _mask(text, ((match.start, match.end) for match in specific))
    masked = _mask(masked, _protected_spans(masked))
    found = list(specific)
    for run in _RUN.finditer(masked):
        start = run.start()
        if masked[start] == "(" and ")" not in run.group():
            start += 1  # "(040 123 4567)": the parenthesis is the sentence's, not an area code's
        found.extend(_classify_run(masked, start, run.end()))
    for dotted in _DOTTED_PHONE.finditer(masked):
        if _digit_count(dotted.group()) >= _MIN_PHONE_DIGITS:
            found.append(Match(IdentifierKind.PHONE, dotted.start(), dotted.end()))
    return sorted(found, key=lambda match: match.start)


def redact(text: str) -> tuple[str, Counter[IdentifierKind]]:
    """*text* with every identifier replaced by ``[redacted: <kind>]``, and how many of each kind there were.

    Redacting the result again changes nothing, and text without digits comes back unchanged.
    """
    matches = find_identifiers(text)
    if not matches:
        return text, Counter()
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position : match.start])
        parts.append(placeholder(match.kind))
        position = match.end
    parts.append(text[position:])
    return "".join(parts), Counter(match.kind for match in matches)


# ---------------------------------------------------------------------------------------------------------
# Specific identifiers
# ---------------------------------------------------------------------------------------------------------


def _specific_candidates(text: str) -> Iterator[Match]:
    for found in _PERSONAL_ID.finditer(text):
        kind = _personal_id_kind(found)
        if kind is not None:
            yield Match(kind, found.start(), found.end())
    for found in _SWEDISH_PERSONNUMMER.finditer(text):
        yield Match(IdentifierKind.PERSONAL_ID, found.start(), found.end())
    for pattern in (_BUSINESS_ID, _VAT_NUMBER):
        for found in pattern.finditer(text):
            yield Match(IdentifierKind.BUSINESS_ID, found.start(), found.end())
    for found in _overlapping(_IBAN, text):
        country = found.group("country").upper()
        expected = _IBAN_LENGTHS.get(country)
        spaced = found.group("space") is not None
        # "IBAN: FI 21 1234 ..." is an IBAN; "se 12 345 ..." is a Finnish word and a number.
        if expected is None or (spaced and not found.group("country").isupper()):
            continue
        end = _cut_to_length(
            text,
            found,
            expected,
            digits_only=country in _IBAN_DIGITS_ONLY,
            bank_code_letters=country in _IBAN_BANK_CODE_LETTERS,
        )
        compact = _compact(text[found.start() : end])
        if len(compact) < expected - _IBAN_TOLERATED_MISSING or (
            _digit_count(compact[4:]) < _IBAN_MIN_ACCOUNT_DIGITS
        ):
            continue
        # A space after the country code is an unusual spelling, and "FI 00358 40 ..." a word and a phone
        # number: that spelling must pass the check.
        if spaced and not _iban_check_digits_match(compact):
            continue
        # A correct IBAN ends where its length says. One that fails the check may be mistyped or not an IBAN
        # at all, so where it was cut is a guess: the rest of a digit run it was cut from goes with it.
        if not _iban_check_digits_match(compact) and text[end - 1].isdecimal():
            rest = _RUN_CONTINUATION.match(text, end)
            end = rest.end() if rest else end
        yield Match(IdentifierKind.IBAN, found.start(), end)
    for found in _overlapping(_CREDITOR_REFERENCE, text):
        end = _cut_to_length(text, found, _CREDITOR_REFERENCE_MAX_LENGTH)
        if end > found.end("check"):
            yield Match(IdentifierKind.NUMBER, found.start(), end)


def _overlapping(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Every match of *pattern*, also those starting inside an earlier one: a greedy match that turns out not
    to be an IBAN ("xx12 FI21 1234 ...") must not hide the one it swallowed."""
    position = 0
    while (found := pattern.search(text, position)) is not None:
        yield found
        position = found.start() + 1


def _personal_id_kind(found: re.Match[str]) -> IdentifierKind | None:
    birth, check = found.group("birth"), found.group("check")
    sign = found.group("sign") or found.group("sign_mark")
    # A letter century sign makes the shape distinctive even right after other digits ("2024010594Y9021");
    # a dash or plus after a longer digit run is just a separator in it.
    if found.group("sign_mark") and found.start() > 0 and found.string[found.start() - 1].isdecimal():
        return None
    day, month = int(birth[:2]), int(birth[2:4])
    if check is None:
        # Without the check character only a real-looking date of birth makes it a personal id; the digits
        # are still redacted as a number run if it is not one.
        return IdentifierKind.PERSONAL_ID if 1 <= day <= 31 and 1 <= month <= 12 else None
    if sign == "-" and check.isdigit() and month >= 20:
        return IdentifierKind.BUSINESS_ID  # Swedish organisationsnummer NNNNNN-NNNN
    return IdentifierKind.PERSONAL_ID


def _iban_check_digits_match(compact: str) -> bool:
    rearranged = (compact[4:] + compact[:4]).upper()
    return rearranged.isascii() and int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _compact(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def _cut_to_length(
    text: str,
    found: re.Match[str],
    length: int,
    *,
    digits_only: bool = False,
    bank_code_letters: bool = False,
) -> int:
    """End of *found* cut where the account part ends, and after at most *length* letters and digits unless
    that is inside a number.

    The account part ends at the first letter where it is *digits_only*, else before the first word without a
    digit (the next word of the sentence); with *bank_code_letters* a four-letter word right after the check
    digits stays ("GB29 NWBK 6016 ...")."""
    body = found.end("check")
    end_of_kept = body
    if digits_only:
        kept = _DIGITS_WITH_SPACES.match(text, body, found.end())
        end_of_kept = kept.end() if kept else body
    else:
        for index, word in enumerate(re.finditer(r"[0-9A-Za-z]+", text[body : found.end()])):
            if not any(ch.isdigit() for ch in word.group()) and not (
                bank_code_letters and index == 0 and len(word.group()) == 4
            ):
                break
            end_of_kept = body + word.end()
    seen = 0
    for position in range(found.start(), end_of_kept):
        if text[position].isalnum():
            seen += 1
            if seen == length:
                # Never through the middle of a number: the digits after the cut would be left behind.
                end = position + 1
                while end < len(text) and text[end].isdecimal() and text[position].isdecimal():
                    end += 1
                return end
    return end_of_kept


def _select(candidates: Iterable[Match]) -> list[Match]:
    """Non-overlapping matches: by precedence of kind, then the longest, then the earliest."""
    chosen: list[Match] = []
    taken: set[int] = set()
    ordered = sorted(
        candidates, key=lambda match: (_SPECIFIC_RANK[match.kind], match.start - match.end, match.start)
    )
    for candidate in ordered:
        span = range(candidate.start, candidate.end)
        if taken.isdisjoint(span):
            chosen.append(candidate)
            taken.update(span)
    return chosen


# ---------------------------------------------------------------------------------------------------------
# What stays
# ---------------------------------------------------------------------------------------------------------


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    characters = list(text)
    for start, end in spans:
        characters[start:end] = _MASK * (end - start)
    return "".join(characters)


def _protected_spans(text: str) -> list[tuple[int, int]]:
    spans = [(found.start(), found.end()) for pattern in _DATES for found in pattern.finditer(text)]
    text = _mask(text, spans)
    run_at: dict[int, tuple[int, int]] = {}
    for run in _RUN.finditer(text):
        run_at.update(dict.fromkeys(range(run.start(), run.end()), run.span()))
    for pattern in _WHOLE_RUNS:
        for found in pattern.finditer(text):
            start, end = found.span()
            touched = {run_at[position] for position in range(start, end) if position in run_at}
            if touched and all(start <= run_start and run_end <= end for run_start, run_end in touched):
                spans.append((start, end))
    return spans


# ---------------------------------------------------------------------------------------------------------
# Digit runs: phone numbers, card numbers, other numbers
# ---------------------------------------------------------------------------------------------------------


def _digit_count(text: str) -> int:
    return sum(ch.isdecimal() for ch in text)


def _phone_prefixed(run: str) -> bool:
    """Whether *run* starts like a phone number: "+", "00" and a country code, or the trunk prefix "0"."""
    head = run.lstrip("(")
    if head.startswith("+"):
        return True
    digits = _DIGIT_GROUP.findall(head)
    first = digits[0] if digits else ""
    if len(first) == 1 and len(digits) > 1:  # "(0)40 ..." or "0 40 ..."
        first += digits[1]
    return first.startswith("0") and not first.startswith("000")


def _max_phone_digits(run: str) -> int:
    head = run.lstrip("(")
    if head.startswith("+"):
        return _MAX_E164_DIGITS
    if "".join(_DIGIT_GROUP.findall(head)).startswith("00"):
        return _MAX_E164_DIGITS + 2
    return _MAX_NATIONAL_PHONE_DIGITS


def _is_valid_phone(text: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(text, "FI")))
    except phonenumbers.NumberParseException:
        return False


def _classify_run(text: str, start: int, end: int) -> list[Match]:
    run = text[start:end]
    digits = _digit_count(run)
    if digits < _MIN_NUMBER_DIGITS:
        return []
    if _phone_prefixed(run):
        if digits <= _max_phone_digits(run):
            kind = IdentifierKind.PHONE if digits >= _MIN_PHONE_DIGITS else IdentifierKind.NUMBER
            return [Match(kind, start, end)]
        return _split_phones(text, start, end)
    return _split_leading_short_groups(text, start, end) or [Match(_unprefixed_kind(run), start, end)]


def _split_leading_short_groups(text: str, start: int, end: int) -> list[Match]:
    """A phone number written right after office hours or a year ("ma-pe 9-16 029 509 5000", "vuonna 2024
    0401234567"): only the phone number. Narrow on purpose: any other short group before a number may be part
    of it, and is then redacted with it."""
    for group in _DIGIT_GROUP.finditer(text, start, end):
        if group.start() == start or not text[group.start() - 1].isspace():
            continue
        if not _HOURS_OR_YEAR.fullmatch(text[start : group.start()].rstrip()):
            return []
        suffix = text[group.start() : end]
        if _phone_prefixed(suffix) and _is_valid_phone(suffix):
            return _classify_run(text, group.start(), end)
        return []
    return []


def _unprefixed_kind(run: str) -> IdentifierKind:
    groups = [len(group) for group in _DIGIT_GROUP.findall(run)]
    digits = "".join(_DIGIT_GROUP.findall(run))
    if len(digits) in _CARD_DIGITS and (_luhn_valid(digits) or _card_grouping(groups)):
        return IdentifierKind.CARD
    # A Finnish number written in international form without its "+".
    if digits.startswith("358") and _is_valid_phone("+" + digits):
        return IdentifierKind.PHONE
    return IdentifierKind.NUMBER


def _split_phones(text: str, start: int, end: int) -> list[Match]:
    """A phone-prefixed run too long to be one number: the longest valid phone numbers from the left, and
    whatever is left over as one number (over-redaction rather than leaving digits of the run behind)."""
    groups = [
        (start + group.start(), start + group.end()) for group in _DIGIT_GROUP.finditer(text[start:end])
    ]
    found: list[Match] = []
    index = 0
    while index < len(groups):
        first = start if index == 0 else groups[index][0]
        # Only as many groups as one number can have digits: a hostile run of thousands stays linear.
        reach, digits = index, 0
        while reach < len(groups) and digits + groups[reach][1] - groups[reach][0] <= _MAX_E164_DIGITS + 2:
            digits += groups[reach][1] - groups[reach][0]
            reach += 1
        last = next(
            (
                candidate
                for candidate in range(reach - 1, index - 1, -1)
                if _is_valid_phone(text[first : groups[candidate][1]])
            ),
            None,
        )
        if last is None:
            found.append(Match(IdentifierKind.NUMBER, first, end))
            break
        found.append(Match(IdentifierKind.PHONE, first, groups[last][1]))
        index = last + 1
    return found


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_grouping(groups: list[int]) -> bool:
    if groups in ([4, 6, 5], [4, 6, 4]):
        return True
    return len(groups) >= 4 and all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 4
