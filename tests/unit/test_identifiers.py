"""Identifier normalisation and validation (shared/contracts/identifiers.py)."""

from __future__ import annotations

import contextlib
import unicodedata
from datetime import date

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from shared.contracts.identifiers import (
    IdentifierError,
    normalise_email,
    normalise_name,
    normalise_nickname,
    normalise_phone,
    personal_identity_code_check_character,
    validate_business_id,
    validate_personal_identity_code,
)

# An independent statement of the rules, so the tests do not check the implementation against itself.
CHECK_TABLE = "0123456789ABCDEFHJKLMNPRSTUVWXY"
CENTURY_SIGNS = {1800: "+", 1900: "-YXWVU", 2000: "ABCDEF"}


def make_hetu(born: date, sign: str, individual: int) -> str:
    ddmmyy = born.strftime("%d%m") + f"{born.year % 100:02d}"
    check = CHECK_TABLE[int(f"{ddmmyy}{individual:03d}") % 31]
    return f"{ddmmyy}{sign}{individual:03d}{check}"


@st.composite
def hetus(draw: st.DrawFn, individuals: st.SearchStrategy[int] | None = None) -> str:
    born = draw(st.dates(min_value=date(1800, 1, 1), max_value=date(2099, 12, 31)))
    sign = draw(st.sampled_from(CENTURY_SIGNS[born.year // 100 * 100]))
    individual = draw(individuals if individuals is not None else st.integers(min_value=2, max_value=999))
    return make_hetu(born, sign, individual)


# ---------------------------------------------------------------------------------------------------------
# IdentifierError
# ---------------------------------------------------------------------------------------------------------


def test_identifier_error_is_a_value_error_with_a_reason() -> None:
    error = IdentifierError("check character does not match")
    assert isinstance(error, ValueError)
    assert error.reason == "check character does not match"
    assert str(error) == "check character does not match"


# ---------------------------------------------------------------------------------------------------------
# Personal identity code
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "131052-308T",  # the classic example
        # Examples published for the 2023 reform's additional century signs.
        "010594Y9021",
        "020594X903P",
        "030594W903B",
        "040594V9030",
        "050594U903M",
        "010516B903X",
        "020516C903K",
        "030516D9037",
        "010501E9032",
        "020503F9037",
        "020504A902E",
    ],
)
def test_known_personal_identity_codes_are_valid(code: str) -> None:
    assert validate_personal_identity_code(code) == code


@given(hetus())
@example("131052-308T")
def test_generated_personal_identity_codes_round_trip(code: str) -> None:
    assert validate_personal_identity_code(code) == code
    assert validate_personal_identity_code(f"  {code.lower()}\n") == code


@given(hetus(), st.sampled_from(CHECK_TABLE))
def test_a_changed_check_character_is_rejected(code: str, replacement: str) -> None:
    assume(replacement != code[-1])
    with pytest.raises(IdentifierError) as caught:
        validate_personal_identity_code(code[:-1] + replacement)
    assert caught.value.reason == "check character does not match"


@given(hetus(individuals=st.integers(min_value=900, max_value=999)))
def test_temporary_identity_codes_are_accepted(code: str) -> None:
    assert validate_personal_identity_code(code) == code


@pytest.mark.parametrize("individual", [0, 1])
def test_individual_numbers_never_assigned_are_rejected(individual: int) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_personal_identity_code(make_hetu(date(1952, 10, 13), "-", individual))
    assert caught.value.reason == "individual number is not in use"


@pytest.mark.parametrize(
    ("day", "month", "yy", "sign"),
    [
        (31, 2, 23, "A"),  # 31 February
        (29, 2, 19, "A"),  # 2019 was not a leap year
        (29, 2, 0, "-"),  # 1900 was not a leap year
        (0, 1, 52, "-"),
        (13, 13, 52, "-"),
    ],
)
def test_impossible_dates_are_rejected(day: int, month: int, yy: int, sign: str) -> None:
    ddmmyy = f"{day:02d}{month:02d}{yy:02d}"
    code = f"{ddmmyy}{sign}308{CHECK_TABLE[int(ddmmyy + '308') % 31]}"
    with pytest.raises(IdentifierError) as caught:
        validate_personal_identity_code(code)
    assert caught.value.reason == "date of birth is not a real date"


def test_leap_day_in_a_leap_year_is_accepted() -> None:
    assert validate_personal_identity_code(make_hetu(date(2000, 2, 29), "A", 123))


@pytest.mark.parametrize(
    "code",
    ["", "131052308T", "131052-308", "131052*308T", "131052G308T", "1310521-308T", "131052-308TT", "abc"],
)
def test_malformed_personal_identity_codes_are_rejected(code: str) -> None:
    with pytest.raises(IdentifierError) as caught:
        validate_personal_identity_code(code)
    assert caught.value.reason == "not a valid personal identity code format"


# ---------------------------------------------------------------------------------------------------------
# Phone numbers
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "e164"),
    [
        ("040 123 4567", "+358401234567"),
        ("0401234567", "+358401234567"),
        ("040-123 4567", "+358401234567"),
        ("040-1234567", "+358401234567"),
        ("+358 40 1234567", "+358401234567"),
        ("+358401234567", "+358401234567"),
        ("+358 (0)40 123 4567", "+358401234567"),
        ("00358401234567", "+358401234567"),
        ("00358 40 123 4567", "+358401234567"),
        ("tel:+358-40-123-4567", "+358401234567"),
        ("  040 123 4567\n", "+358401234567"),
        ("040\u00a0123\u00a04567", "+358401234567"),
        ("(09) 1234 5678", "+358912345678"),
        ("09 1234 5678", "+358912345678"),
        ("029 509 5000", "+358295095000"),  # national service numbers
        ("0295 53 6000", "+358295536000"),
        ("0800 12345", "+35880012345"),
        ("+46 70 123 45 67", "+46701234567"),
        ("0046 70 123 45 67", "+46701234567"),
        ("+1 202 456 1111", "+12024561111"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_spellings_normalise_to_e164(spelling: str, e164: str) -> None:
    assert normalise_phone(spelling) == e164


def test_national_numbers_are_read_in_the_default_region() -> None:
    assert normalise_phone("070 123 45 67", default_region="SE") == "+46701234567"
    assert normalise_phone("070-1234567", default_region="se") == "+46701234567"


@pytest.mark.parametrize(
    "spelling",
    [
        "",
        "   ",
        "112",  # emergency number: not a subscriber number
        "040 123",  # too short
        "09 123",
        "+358 00 000 0000",
        "+999 123456",  # no such country code
        "12345678901234567890",
        "+358401234567890",  # too long
        "1-800-FLOWERS",  # vanity letters
        "040 1234567a",
        "040 123 4567 ext. 12",
        "040 123 4567 #12",
        "not a number",
        "+" + "1" * 100,
    ],
)
def test_invalid_phone_numbers_are_rejected(spelling: str) -> None:
    with pytest.raises(IdentifierError):
        normalise_phone(spelling)


# ---------------------------------------------------------------------------------------------------------
# E-mail addresses
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("matti.meikalainen@example.fi", "matti.meikalainen@example.fi"),
        ("  Matti.Meikalainen@Example.FI \t", "matti.meikalainen@example.fi"),
        ("MATTI+kela@SUB.Example.fi", "matti+kela@sub.example.fi"),
        ("Äiti@Esimerkki.fi", "äiti@esimerkki.fi"),
        ("A\u0308iti@esimerkki.fi", "äiti@esimerkki.fi"),  # decomposed Ä
    ],
)
def test_emails_normalise_for_case_insensitive_matching(raw: str, normalised: str) -> None:
    assert normalise_email(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "matti.example.fi",
        "matti meikalainen@example.fi",
        "matti@exam ple.fi",
        "matti@example.fi\x00",
        "@example.fi",
        "matti@",
        "matti@.fi",
        "matti@example.fi.",
        "matti@example..fi",
        "matti@-example.fi",
        "m" * 65 + "@example.fi",
        "matti@" + "e" * 250 + ".fi",
    ],
)
def test_invalid_emails_are_rejected(raw: str) -> None:
    with pytest.raises(IdentifierError):
        normalise_email(raw)


# ---------------------------------------------------------------------------------------------------------
# Business id
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("0112038-9", "0112038-9"),
        (" 0112038-9 ", "0112038-9"),
        ("112038-9", "0112038-9"),  # old six-digit spelling
    ],
)
def test_valid_business_ids(raw: str, canonical: str) -> None:
    assert validate_business_id(raw) == canonical


@pytest.mark.parametrize(
    "raw", ["", "0112038-8", "01120389", "0112038 9", "FI01120389", "01120380-9", "abcdefg-h"]
)
def test_invalid_business_ids_are_rejected(raw: str) -> None:
    with pytest.raises(IdentifierError):
        validate_business_id(raw)


@given(st.from_regex(r"\A[0-9]{7}\Z"))
def test_each_business_number_has_at_most_one_valid_check_digit(digits: str) -> None:
    weighted = sum(int(d) * w for d, w in zip(digits, (7, 9, 10, 5, 8, 4, 2), strict=True))
    accepted = []
    for check in range(10):
        with contextlib.suppress(IdentifierError):
            accepted.append(validate_business_id(f"{digits}-{check}"))
    if weighted % 11 == 1:
        assert accepted == []
    else:
        assert accepted == [f"{digits}-{(11 - weighted % 11) % 11}"]


# ---------------------------------------------------------------------------------------------------------
# Names and nicknames
# ---------------------------------------------------------------------------------------------------------


def test_names_are_case_folded_nfc_and_whitespace_collapsed() -> None:
    decomposed = unicodedata.normalize("NFD", "Meikäläinen")
    assert normalise_name(f"  MATTI \t  {decomposed}\n") == "matti meikäläinen"
    assert normalise_name("Matti Meikäläinen") == normalise_name("MATTI  MEIKÄLÄINEN")
    assert normalise_name("Strauß") == "strauss"
    assert normalise_name("Meikäläinen") != normalise_name("Meikalainen")


def test_nicknames_match_their_stylised_spellings() -> None:
    assert normalise_nickname("@Matti_V") == "matti_v"
    assert normalise_nickname("\uff2d\uff41\uff54\uff54\uff49") == "matti"  # full-width letters
    assert normalise_nickname("Ma\u200btti") == "matti"  # zero-width space
    assert normalise_nickname("  Kissa   Kala ") == "kissa kala"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_names_are_rejected(raw: str) -> None:
    with pytest.raises(IdentifierError):
        normalise_name(raw)
    with pytest.raises(IdentifierError):
        normalise_nickname(raw)


def test_a_lone_at_sign_is_not_a_nickname() -> None:
    with pytest.raises(IdentifierError):
        normalise_nickname("@")


# ---------------------------------------------------------------------------------------------------------
# Errors never carry the input
# ---------------------------------------------------------------------------------------------------------

VALIDATORS = [
    normalise_phone,
    validate_personal_identity_code,
    normalise_email,
    validate_business_id,
    normalise_name,
    normalise_nickname,
]

INVALID_SAMPLES = [
    "040 123",
    "0401234567 ext. 99",
    "+358 00 000 0000",
    "131052-308A",
    "310252-308T",
    "131052-000T",
    "131052Q308T",
    "matti meikalainen@example.fi",
    "matti.meikalainen.example.fi",
    "0112038-8",
    "1234567-1",
    "x" * 600,
]


def assert_input_not_in_error(error: IdentifierError, raw: str) -> None:
    text = f"{error} {error!r} {error.reason} {error.args}"
    assert raw not in text
    assert raw.strip() not in text
    # Raised from None: no chained exception can carry the input into a traceback either.
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None


@pytest.mark.parametrize("raw", INVALID_SAMPLES)
def test_error_messages_never_contain_the_input(raw: str) -> None:
    for validator in VALIDATORS:
        try:
            validator(raw)
        except IdentifierError as error:
            assert_input_not_in_error(error, raw)


# Reasons contain neither digits nor upper-case letters, so an input with at least one of them can only show
# up in a message by being echoed.
@given(st.text(alphabet="0123456789+-() .@ABCXYZaeimt", min_size=3, max_size=40))
def test_generated_invalid_inputs_never_appear_in_errors(raw: str) -> None:
    assume(any(ch.isdigit() or ch.isupper() for ch in raw))
    for validator in VALIDATORS:
        try:
            validator(raw)
        except IdentifierError as error:
            assert_input_not_in_error(error, raw)


@pytest.mark.parametrize(
    "code",
    [
        "\u0661\u0663\u0661\u0660\u0665\u0662-\u0663\u0660\u0668T",
        "\uff11\uff13\uff11\uff10\uff15\uff12-\uff13\uff10\uff18T",
    ],
)
def test_non_ascii_digits_are_not_accepted(code: str) -> None:
    with pytest.raises(IdentifierError):
        validate_personal_identity_code(code)
    with pytest.raises(IdentifierError):
        validate_business_id("\u0660\u0661\u0661\u0662\u0660\u0663\u0668-\u0669")


def test_check_character_helper_refuses_anything_but_nine_digits() -> None:
    assert personal_identity_code_check_character("131052308") == "T"
    with pytest.raises(IdentifierError) as caught:
        personal_identity_code_check_character("13105230X")
    assert_input_not_in_error(caught.value, "13105230X")
