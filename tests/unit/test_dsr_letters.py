"""Letters to data subjects, rendered from the repository's real policy files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.dsr.letters import (
    LANGUAGE_HEADINGS,
    LANGUAGES,
    ExtensionReason,
    Language,
    LetterContext,
    LiftReason,
    LoanRecipient,
    LoanStatus,
    Outcome,
    PackageContents,
    RegisterDecision,
    RegisterFindings,
    StatutoryGround,
    cover_letter,
    decision_letter,
    describe_period,
    describe_retention,
    extension_letter,
    no_data_letter,
    restriction_lifted_letter,
)
from shared.contracts.vocabulary import ArtifactClass
from shared.policy.loader import load_policies
from shared.policy.model import (
    Action,
    LegalBasis,
    Period,
    PolicyVersion,
    RecipientKind,
    RetentionRule,
    RightName,
    RightStatus,
    Safeguard,
    Trigger,
)
from shared.policy.registry import PolicyRegistry

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"
HELSINKI = ZoneInfo("Europe/Helsinki")

CONTEXT = LetterContext(
    case_number="DSR-2025-0042",
    received_on=date(2025, 2, 3),
    dated=date(2025, 2, 20),
    last_day=date(2025, 3, 3),
)
PACKAGE = PackageContents(contacts=4, recordings=2, messages=10, transcripts=1)
LOAN = LoanRecipient(
    institute="Tampereen yliopisto",
    reference="TUTK-2024/17",
    lent_from=date(2024, 3, 1),
    lent_until=date(2024, 9, 30),
    status=LoanStatus.RETURNED,
)

# An ISO 8601 duration as the policies write them; none may reach a reader.
ISO_DURATION = re.compile(r"\bP(?:\d+[YMWD])+(?:T(?:\d+[HMS])+)?\b|\bPT(?:\d+[HMS])+\b")
PLACEHOLDER = re.compile(r"\{[a-z_0-9]*\}")


@pytest.fixture(scope="module")
def registry() -> PolicyRegistry:
    return load_policies(POLICY_DIR)


def _all_versions() -> list[PolicyVersion]:
    registry = load_policies(POLICY_DIR)
    return [v for register in registry.registers() for v in registry.get(register).versions]


ALL_VERSIONS = _all_versions()


def parts(letter: str) -> dict[Language, str]:
    """The letter cut at its language headings; fails unless they come once each, fi, sv, en."""
    positions = [letter.index(f"{LANGUAGE_HEADINGS[lang]}\n") for lang in LANGUAGES]
    for lang in LANGUAGES:
        assert letter.count(f"{LANGUAGE_HEADINGS[lang]}\n") == 1
    assert positions == sorted(positions)
    assert positions[0] == 0
    ends = [*positions[1:], len(letter)]
    return {lang: letter[start:end] for lang, start, end in zip(LANGUAGES, positions, ends, strict=True)}


def assert_well_formed(letter: str) -> dict[Language, str]:
    sections = parts(letter)
    assert letter.endswith("\n") and not letter.endswith("\n\n")
    assert letter.encode("utf-8").decode("utf-8") == letter
    assert not ISO_DURATION.search(letter), ISO_DURATION.search(letter)
    assert not PLACEHOLDER.search(letter), PLACEHOLDER.search(letter)
    assert all(line == line.rstrip() for line in letter.splitlines())
    salutations = {
        Language.FI: "Hyvä rekisteröity,",
        Language.SV: "Bästa registrerade,",
        Language.EN: "Dear data subject,",
    }
    for lang, text in sections.items():
        assert salutations[lang] in text
    return sections


def prh_2024(registry: PolicyRegistry) -> PolicyVersion:
    version = registry.version_at("prh-customer-service", datetime(2024, 5, 1, 10, 0, tzinfo=HELSINKI))
    assert version is not None and version.version == "2021-10-20"
    return version


# ------------------------------------------------------------------------------------------ access cover


def test_prh_cover_letter_lists_the_loan_in_all_three_languages(registry: PolicyRegistry) -> None:
    findings = RegisterFindings(versions=(prh_2024(registry),), loans=(LOAN,))
    sections = assert_well_formed(cover_letter(CONTEXT, [findings], PACKAGE))
    status = {
        Language.FI: "tiedot on palautettu",
        Language.SV: "uppgifterna har återlämnats",
        Language.EN: "the data have been returned",
    }
    period = {
        Language.FI: "1.3.2024\N{EN DASH}30.9.2024",
        Language.SV: "1.3.2024\N{EN DASH}30.9.2024",
        Language.EN: "1 March 2024 to 30 September 2024",
    }
    for lang, text in sections.items():
        assert "Tampereen yliopisto" in text
        assert "TUTK-2024/17" in text
        assert status[lang] in text
        assert period[lang] in text


def test_prh_cover_letter_has_the_art_15_information(registry: PolicyRegistry) -> None:
    version = prh_2024(registry)
    sections = assert_well_formed(cover_letter(CONTEXT, [RegisterFindings(versions=(version,))], PACKAGE))
    recording_retention = {
        Language.FI: "tallenteet: 6 kuukautta yhteydenoton alkamisesta",
        Language.SV: "inspelningar: 6 månader från kontaktens början",
        Language.EN: "recordings: 6 months from the start of the contact",
    }
    authority = {
        Language.FI: "Tietosuojavaltuutetun toimisto (Office of the Data Protection Ombudsman)",
        Language.SV: "Dataombudsmannens byrå (Office of the Data Protection Ombudsman)",
        Language.EN: "Office of the Data Protection Ombudsman",
    }
    for lang, text in sections.items():
        assert authority[lang] in text
        assert "PL 800, 00531 Helsinki" in text
        assert "https://tietosuoja.fi/" in text
        assert recording_retention[lang] in text
        assert "GDPR Art. 6(1)(c)" in text
        assert "DSR-2025-0042" in text
        assert version.controller.name in text
        assert "olli.vento@prh.fi" in text  # the data protection officer's published address
        for purpose in version.purposes:
            assert purpose in text
        for source in version.sources:
            assert source in text
        assert "Call recording: audio from the answer to the hang-up signal" in text
        # Kept in prh-beneficial-owner-customers, which answers for it in its own findings.
        assert "Beneficial-owner request identification" not in text
        assert version.rights.erasure.ground is not None and version.rights.erasure.ground in text
        assert "Research institute" in text
    assert "lakisääteisen velvoitteen" in sections[Language.FI]
    assert "tietojasi ei ole luovutettu tutkimuslaitokselle" in sections[Language.FI]
    assert "your data have not been lent to a research institute" in sections[Language.EN]
    assert "the data are not transferred outside the EU/EEA" in sections[Language.EN]
    assert "The data are not used for automated decision-making" in sections[Language.EN]
    assert "The data are not used for profiling" in sections[Language.EN]
    assert (
        "Contents of the copy:\n- Contacts: 4\n- Recordings: 2\n- Messages: 10\n- Transcripts: 1"
        in (sections[Language.EN])
    )
    assert "Vastauksen määräpäivä: 3.3.2025" in sections[Language.FI]
    assert "Begäran mottagen: 3.2.2025" in sections[Language.SV]
    assert "Last day for the reply: 3 March 2025" in sections[Language.EN]


def test_both_prh_versions_are_described_when_contacts_fall_under_both(registry: PolicyRegistry) -> None:
    old = registry.version_at("prh-customer-service", datetime(2019, 3, 1, 10, 0, tzinfo=HELSINKI))
    assert old is not None
    new = prh_2024(registry)
    # Given newest first: the letter still goes in effective-date order.
    findings = RegisterFindings(versions=(new, old))
    assert findings.versions == (old, new)
    sections = assert_well_formed(cover_letter(CONTEXT, [findings], PACKAGE))
    for text in sections.values():
        assert old.notice.title in text and new.notice.title in text
        assert text.index(old.notice.title) < text.index(new.notice.title)
        assert "Chat participant data" in text  # the 2018 notice's nickname


def test_held_classes_narrow_the_categories_and_retention(registry: PolicyRegistry) -> None:
    findings = RegisterFindings(
        versions=(prh_2024(registry),), held_classes=frozenset({ArtifactClass.RECORDING})
    )
    english = parts(cover_letter(CONTEXT, [findings], PACKAGE))[Language.EN]
    assert "Call recording" in english
    assert "SMS survey answers" not in english
    assert "recordings: 6 months" in english
    assert "contact history: 12 months" not in english


def test_statfi_transfer_outside_the_eea_names_the_safeguards(registry: PolicyRegistry) -> None:
    findings = RegisterFindings(versions=(registry.latest("statfi-chat"),))
    sections = parts(cover_letter(CONTEXT, [findings], PACKAGE))
    assert "EU:n vakiosopimuslausekkeet" in sections[Language.FI]
    assert "EU:s standardavtalsklausuler" in sections[Language.SV]
    assert "the EU standard contractual clauses" in sections[Language.EN]
    assert "Processor: Elisa" in sections[Language.EN]
    assert "35 päivää yhteydenoton alkamisesta" in sections[Language.FI]


def test_dvv_without_a_data_protection_officer_says_so(registry: PolicyRegistry) -> None:
    findings = RegisterFindings(versions=(registry.latest("dvv-personal-customer-service"),))
    english = parts(cover_letter(CONTEXT, [findings], PACKAGE))[Language.EN]
    assert "the privacy notice gives no contact details of the data protection officer" in english
    assert "Contact person: Ledande sakkunnig, e-mail kirjaamo@dvv.fi" in english
    assert "Lagen om befolkningsdatasystemet" in english  # the law named for the legal basis
    assert "1 year from the end of the contact" in english
    assert "1 year from the closing of the case" in english


# --------------------------------------------------------------------------------------------- decisions


def test_dvv_erasure_refusal_cites_dvvs_ground(registry: PolicyRegistry) -> None:
    dvv = registry.latest("dvv-personal-customer-service")
    ground = dvv.rights.erasure.ground
    assert dvv.rights.erasure.status is RightStatus.REFUSED and ground is not None
    letter = decision_letter(CONTEXT, RightName.ERASURE, [RegisterDecision(dvv, Outcome.REFUSED)])
    sections = assert_well_formed(letter)
    lead = {
        Language.FI: "Peruste tietosuojaselosteen mukaan (englanniksi): ",
        Language.SV: "Grund enligt dataskyddsbeskrivningen (på engelska): ",
        Language.EN: "Ground according to the privacy notice: ",
    }
    asked = {
        Language.FI: "Pyysit sinua koskevien henkilötietojen poistamista (tietosuoja-asetuksen 17 artikla)",
        Language.SV: "Du begärde radering av dina personuppgifter (artikel 17 i dataskyddsförordningen)",
        Language.EN: "You asked for your personal data to be erased (GDPR Art. 17)",
    }
    refused = {
        Language.FI: "pyyntöäsi ei hyväksytä",
        Language.SV: "din begäran avslås",
        Language.EN: "your request is refused",
    }
    remedy = {
        Language.FI: "tietosuoja-asetuksen 79 artikla",
        Language.SV: "artikel 79 i dataskyddsförordningen",
        Language.EN: "GDPR Art. 79",
    }
    for lang, text in sections.items():
        assert lead[lang] + ground in text
        assert asked[lang] in text
        assert refused[lang] in text
        assert remedy[lang] in text
        assert "Office of the Data Protection Ombudsman" in text
    assert "Tietosuojavaltuutetun toimisto" in sections[Language.FI]
    assert "Dataombudsmannens byrå" in sections[Language.SV]


def test_partial_grant_splits_a_register_by_class(registry: PolicyRegistry) -> None:
    hsy = registry.latest("hsy-customer-service")
    dvv = registry.latest("dvv-personal-customer-service")
    letter = decision_letter(
        CONTEXT,
        RightName.ERASURE,
        [
            RegisterDecision(hsy, Outcome.GRANTED, (ArtifactClass.MESSAGES,)),
            RegisterDecision(hsy, Outcome.REFUSED, (ArtifactClass.RECORDING,)),
            RegisterDecision(dvv, Outcome.NO_DATA),
        ],
    )
    english = assert_well_formed(letter)[Language.EN]
    assert "Decision: your request is granted (concerns: messages and conversations)." in english
    assert "Decision: your request is refused (concerns: recordings)." in english
    assert "Decision: the register holds no data about you." in english
    assert hsy.rights.erasure.ground is not None and hsy.rights.erasure.ground in english


def test_refusal_of_a_granted_right_needs_a_statutory_ground(registry: PolicyRegistry) -> None:
    prh = prh_2024(registry)
    assert prh.rights.access.status is RightStatus.GRANTED
    with pytest.raises(ValueError, match="statutory_ground"):
        decision_letter(CONTEXT, RightName.ACCESS, [RegisterDecision(prh, Outcome.REFUSED)])
    letter = decision_letter(
        CONTEXT,
        RightName.ACCESS,
        [
            RegisterDecision(
                prh, Outcome.REFUSED, (ArtifactClass.RECORDING,), StatutoryGround.RIGHTS_OF_OTHERS
            )
        ],
    )
    sections = assert_well_formed(letter)
    assert "tietosuoja-asetuksen 15 artiklan 4 kohta" in sections[Language.FI]
    assert "artikel 15.4 i dataskyddsförordningen" in sections[Language.SV]
    assert "(GDPR Art. 15(4))" in sections[Language.EN]
    # No policy ground is quoted, so no note about quoting one in English.
    assert "lainattu englanniksi" not in sections[Language.FI]


def test_statutory_grounds_fit_their_rights(registry: PolicyRegistry) -> None:
    prh = prh_2024(registry)
    with pytest.raises(ValueError, match="not a ground"):
        decision_letter(
            CONTEXT,
            RightName.RECTIFICATION,
            [RegisterDecision(prh, Outcome.REFUSED, statutory_ground=StatutoryGround.RIGHTS_OF_OTHERS)],
        )
    with pytest.raises(ValueError, match="refusal only"):
        RegisterDecision(prh, Outcome.GRANTED, statutory_ground=StatutoryGround.DATA_ACCURATE)


def test_overlapping_decisions_are_refused(registry: PolicyRegistry) -> None:
    hsy = registry.latest("hsy-customer-service")
    with pytest.raises(ValueError, match="same data"):
        decision_letter(
            CONTEXT,
            RightName.ERASURE,
            [
                RegisterDecision(hsy, Outcome.GRANTED),
                RegisterDecision(hsy, Outcome.REFUSED, (ArtifactClass.RECORDING,)),
            ],
        )
    with pytest.raises(ValueError, match="same data"):
        decision_letter(
            CONTEXT,
            RightName.ERASURE,
            [
                RegisterDecision(hsy, Outcome.GRANTED, (ArtifactClass.RECORDING, ArtifactClass.MESSAGES)),
                RegisterDecision(hsy, Outcome.REFUSED, (ArtifactClass.RECORDING,)),
            ],
        )


# ---------------------------------------------------------------------------------- the other letters


def test_no_data_letter_names_the_registers_and_the_complaint_authority(registry: PolicyRegistry) -> None:
    searched = [registry.latest("dvv-personal-customer-service"), registry.latest("statfi-chat")]
    sections = assert_well_formed(no_data_letter(CONTEXT, searched))
    no_data = {
        Language.FI: "Niissä ei ole sinua koskevia henkilötietoja.",
        Language.SV: "De innehåller inga personuppgifter om dig.",
        Language.EN: "They hold no personal data about you.",
    }
    for lang, text in sections.items():
        assert no_data[lang] in text
        assert "Office of the Data Protection Ombudsman" in text
        assert "https://tietosuoja.fi/sv/" in text
        for version in searched:
            assert version.register_name in text
    assert "Tietosuojavaltuutetun toimisto" in sections[Language.FI]
    assert "(tietosuoja-asetuksen 77 artikla)" in sections[Language.FI]


def test_no_data_letter_answers_other_requests_too(registry: PolicyRegistry) -> None:
    letter = no_data_letter(CONTEXT, [registry.latest("hsy-customer-service")], request=RightName.ERASURE)
    assert "You asked for your personal data to be erased (GDPR Art. 17)" in parts(letter)[Language.EN]


def test_extension_letter_gives_reasons_and_the_new_last_day(registry: PolicyRegistry) -> None:
    letter = extension_letter(
        CONTEXT,
        RightName.ACCESS,
        [registry.latest("dvv-personal-customer-service")],
        reasons=[ExtensionReason.VOLUME_OF_DATA, ExtensionReason.OTHERS_DATA],
        new_last_day=date(2025, 5, 5),
    )
    sections = assert_well_formed(letter)
    assert "tietosuoja-asetuksen 12 artiklan 3 kohdan nojalla" in sections[Language.FI]
    assert "Vastaamme pyyntöösi viimeistään 5.5.2025." in sections[Language.FI]
    assert "Vi svarar på din begäran senast 5.5.2025." in sections[Language.SV]
    assert "artikel 12.3 i dataskyddsförordningen" in sections[Language.SV]
    english = sections[Language.EN]
    assert "We extend it under GDPR Art. 12(3)" in english
    assert "by 5 May 2025 at the latest" in english
    assert "would end on 3 March 2025" in english
    assert "- the recordings contain data about other people" in english
    assert "- there is a large amount of data" in english
    assert "Office of the Data Protection Ombudsman" in english


def test_extension_letter_checks_its_dates(registry: PolicyRegistry) -> None:
    dvv = [registry.latest("dvv-personal-customer-service")]
    reasons = [ExtensionReason.COMPLEX_REQUEST]
    with pytest.raises(ValueError, match="after the current last day"):
        extension_letter(CONTEXT, RightName.ACCESS, dvv, reasons=reasons, new_last_day=date(2025, 3, 3))
    late = LetterContext("DSR-1", date(2025, 2, 3), dated=date(2025, 3, 4), last_day=date(2025, 3, 3))
    with pytest.raises(ValueError, match="within the original time limit"):
        extension_letter(late, RightName.ACCESS, dvv, reasons=reasons, new_last_day=date(2025, 5, 5))
    open_ended = LetterContext("DSR-1", date(2025, 2, 3), dated=date(2025, 2, 10))
    with pytest.raises(ValueError, match="current last day"):
        extension_letter(open_ended, RightName.ACCESS, dvv, reasons=reasons, new_last_day=date(2025, 5, 5))
    with pytest.raises(ValueError, match="reasons"):
        extension_letter(CONTEXT, RightName.ACCESS, dvv, reasons=[], new_last_day=date(2025, 5, 5))


def test_restriction_lifted_letter_comes_before_the_lift(registry: PolicyRegistry) -> None:
    prh = prh_2024(registry)
    context = LetterContext("DSR-2025-0043", received_on=date(2025, 1, 3), dated=date(2025, 2, 20))
    letter = restriction_lifted_letter(
        context,
        [prh],
        restricted_on=date(2025, 1, 5),
        lifted_on=date(2025, 3, 6),
        reason=LiftReason.ACCURACY_VERIFIED,
    )
    sections = assert_well_formed(letter)
    assert "tietosuoja-asetuksen 18 artiklan 3 kohta" in sections[Language.FI]
    assert (
        "rajoitus poistetaan 6.3.2025, koska tietojen paikkansapitävyys on tarkistettu"
        in sections[Language.FI]
    )
    assert "den hävs 6.3.2025, eftersom uppgifternas riktighet har kontrollerats" in sections[Language.SV]
    english = sections[Language.EN]
    assert "it will be lifted on 6 March 2025, because the accuracy of the data has been verified" in english
    assert "restricted since 5 January 2025" in english
    assert "- recordings: 6 months from the start of the contact" in english
    assert "contact the controller before 6 March 2025" in english
    assert "Office of the Data Protection Ombudsman" in english
    with pytest.raises(ValueError, match="before the restriction is lifted"):
        restriction_lifted_letter(
            context,
            [prh],
            restricted_on=date(2025, 1, 5),
            lifted_on=date(2025, 2, 20),
            reason=LiftReason.ACCURACY_VERIFIED,
        )


# -------------------------------------------------------------------------------- every register renders


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.id)
def test_every_register_renders_a_cover_letter(version: PolicyVersion) -> None:
    sections = assert_well_formed(cover_letter(CONTEXT, [RegisterFindings(versions=(version,))], PACKAGE))
    for text in sections.values():
        assert version.rights.complaint_authority.name in text
        for category in version.data_categories:
            assert (category.name in text) is (category.stored_in_register is None)
        for recipient in version.recipients:
            assert recipient.name in text


@pytest.mark.parametrize("right", list(RightName))
@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.id)
def test_every_right_of_every_register_renders(version: PolicyVersion, right: RightName) -> None:
    granted = version.rights.of(right)
    if granted.status is RightStatus.GRANTED:
        decision = RegisterDecision(
            version, Outcome.REFUSED, statutory_ground=StatutoryGround.SUBJECT_NOT_IDENTIFIABLE
        )
    else:
        decision = RegisterDecision(version, Outcome.REFUSED)
    sections = assert_well_formed(decision_letter(CONTEXT, right, [decision]))
    for text in sections.values():
        if granted.status is not RightStatus.GRANTED:
            assert granted.ground is not None and granted.ground in text
        assert "Office of the Data Protection Ombudsman" in text
    granted_letter = decision_letter(CONTEXT, right, [RegisterDecision(version, Outcome.GRANTED)])
    assert_well_formed(granted_letter)


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.id)
def test_every_register_renders_the_other_letters(version: PolicyVersion) -> None:
    assert_well_formed(no_data_letter(CONTEXT, [version]))
    for reason in ExtensionReason:
        assert_well_formed(
            extension_letter(
                CONTEXT, RightName.ACCESS, [version], reasons=[reason], new_last_day=date(2025, 5, 5)
            )
        )
    for lift in LiftReason:
        assert_well_formed(
            restriction_lifted_letter(
                CONTEXT, [version], restricted_on=date(2025, 2, 4), lifted_on=date(2025, 3, 10), reason=lift
            )
        )


RULES = [(version, rule) for version in ALL_VERSIONS for rule in version.retention]


@pytest.mark.parametrize(("version", "rule"), RULES, ids=[f"{v.id}:{r.artifact_class}" for v, r in RULES])
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_retention_rule_renders_a_period_phrase(
    version: PolicyVersion, rule: RetentionRule, lang: Language
) -> None:
    phrase = describe_retention(rule, lang)
    assert "?" not in phrase
    assert not ISO_DURATION.search(phrase)
    assert rule.period.isoformat() not in phrase
    assert re.match(r"^\d+ \w", phrase)
    section = parts(cover_letter(CONTEXT, [RegisterFindings(versions=(version,))], PACKAGE))[lang]
    assert phrase in section


# -------------------------------------------------------------------------------------- period phrases

PERIODS = [
    ("P6M", "6 kuukautta", "6 månader", "6 months"),
    ("P12M", "12 kuukautta", "12 månader", "12 months"),
    ("P1Y", "1 vuosi", "1 år", "1 year"),
    ("P2Y", "2 vuotta", "2 år", "2 years"),
    ("P5Y", "5 vuotta", "5 år", "5 years"),
    ("P35D", "35 päivää", "35 dagar", "35 days"),
    ("PT1H", "1 tunti", "1 timme", "1 hour"),
    ("P1M", "1 kuukausi", "1 månad", "1 month"),
    ("P2W", "14 päivää", "14 dagar", "14 days"),
    ("PT30M", "30 minuuttia", "30 minuter", "30 minutes"),
    ("P1Y6M", "1 vuosi ja 6 kuukautta", "1 år och 6 månader", "1 year and 6 months"),
    (
        "P1Y2M3DT4H",
        "1 vuosi, 2 kuukautta, 3 päivää ja 4 tuntia",
        "1 år, 2 månader, 3 dagar och 4 timmar",
        "1 year, 2 months, 3 days and 4 hours",
    ),
]


@pytest.mark.parametrize(("iso", "fi", "sv", "en"), PERIODS)
def test_periods_in_words(iso: str, fi: str, sv: str, en: str) -> None:
    period = Period.parse(iso)
    assert describe_period(period, Language.FI) == fi
    assert describe_period(period, Language.SV) == sv
    assert describe_period(period, "en") == en


TRIGGERS = {
    Trigger.CONTACT_START: (
        "yhteydenoton alkamisesta",
        "från kontaktens början",
        "from the start of the contact",
    ),
    Trigger.CONTACT_END: (
        "yhteydenoton päättymisestä",
        "från kontaktens slut",
        "from the end of the contact",
    ),
    Trigger.CASE_CLOSED: (
        "asian käsittelyn päättymisestä",
        "från att ärendet avslutades",
        "from the closing of the case",
    ),
    Trigger.MESSAGE_SENT: (
        "viestin lähettämisestä",
        "från att meddelandet skickades",
        "from when the message was sent",
    ),
}


@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_trigger_has_a_phrase(trigger: Trigger) -> None:
    rule = RetentionRule.model_validate(
        {"class": "recording", "period": "P6M", "trigger": trigger, "action": "delete"}
    )
    for lang, words in zip(LANGUAGES, TRIGGERS[trigger], strict=True):
        assert describe_retention(rule, lang) == f"{describe_period(rule.period, lang)} {words}"


@given(
    years=st.integers(0, 5),
    months=st.integers(0, 30),
    days=st.integers(0, 400),
    hours=st.integers(0, 48),
    minutes=st.integers(0, 59),
)
def test_any_period_reads_as_words(years: int, months: int, days: int, hours: int, minutes: int) -> None:
    period = Period(years=years, months=months, days=days, hours=hours, minutes=minutes)
    if period.is_zero:
        with pytest.raises(ValueError):
            describe_period(period, Language.EN)
        return
    for lang in LANGUAGES:
        text = describe_period(period, lang)
        assert not ISO_DURATION.search(text) and "?" not in text
        numbers = [int(n) for n in re.findall(r"\d+", text)]
        assert numbers == [n for n in (years, months, days, hours, minutes) if n]


# ------------------------------------------------------------------------------------------ no personal data


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: v.id)
def test_letters_name_no_one(version: PolicyVersion) -> None:
    letter = cover_letter(CONTEXT, [RegisterFindings(versions=(version,))], PACKAGE)
    letter += decision_letter(CONTEXT, RightName.ERASURE, [RegisterDecision(version, Outcome.GRANTED)])
    letter += restriction_lifted_letter(
        CONTEXT,
        [version],
        restricted_on=date(2025, 2, 4),
        lifted_on=date(2025, 3, 10),
        reason=LiftReason.ACCURACY_VERIFIED,
    )
    controller = version.controller
    people = [controller.contact_person, controller.representative, controller.data_protection_officer]
    for person in people:
        if person is not None and person.name is not None:
            assert person.name not in letter


def test_inputs_cannot_smuggle_text_into_a_letter() -> None:
    for case_number in ("Matti Meikäläinen", "DSR-1\nHyvä Matti", "", "x" * 65):
        with pytest.raises(ValueError, match="case number"):
            LetterContext(case_number, date(2025, 2, 3), date(2025, 2, 3))
    with pytest.raises(ValueError, match="single line"):
        LoanRecipient("Institute\nDear Matti", "REF-1", date(2024, 1, 1), date(2024, 2, 1), LoanStatus.OUT)
    with pytest.raises(ValueError, match="non-empty"):
        LoanRecipient("Institute", "  ", date(2024, 1, 1), date(2024, 2, 1), LoanStatus.OUT)


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="before the request"):
        LetterContext("DSR-1", received_on=date(2025, 2, 3), dated=date(2025, 2, 2))
    with pytest.raises(ValueError, match="last day"):
        LetterContext(
            "DSR-1", received_on=date(2025, 2, 3), dated=date(2025, 2, 3), last_day=date(2025, 2, 1)
        )
    with pytest.raises(ValueError, match="end before it began"):
        LoanRecipient("Institute", "REF-1", date(2024, 2, 1), date(2024, 1, 1), LoanStatus.RETURNED)
    with pytest.raises(ValueError, match="non-negative"):
        PackageContents(contacts=-1, recordings=0, messages=0, transcripts=0)
    with pytest.raises(ValueError, match="non-negative"):
        PackageContents(contacts=True, recordings=0, messages=0, transcripts=0)


def test_findings_are_checked(registry: PolicyRegistry) -> None:
    prh = registry.get("prh-customer-service").versions
    with pytest.raises(ValueError, match="policy version"):
        RegisterFindings(versions=())
    with pytest.raises(ValueError, match="one register"):
        RegisterFindings(versions=(prh[0], registry.latest("statfi-chat")))
    with pytest.raises(ValueError, match="twice"):
        RegisterFindings(versions=(prh[0], prh[0]))
    with pytest.raises(ValueError, match="no_data_letter"):
        RegisterFindings(versions=(prh[0],), held_classes=frozenset())
    with pytest.raises(ValueError, match="no_data_letter"):
        cover_letter(CONTEXT, [], PACKAGE)
    with pytest.raises(ValueError, match="listed twice"):
        cover_letter(
            CONTEXT, [RegisterFindings(versions=(prh[0],)), RegisterFindings(versions=(prh[1],))], PACKAGE
        )


def test_every_enum_member_has_its_words() -> None:
    # A new member added to shared.policy.registry or here must come with its phrases, or a letter would fail
    # at runtime.
    from services.dsr import letters

    tables: list[tuple[object, type[StrEnum]]] = [
        (letters._CLASSES, ArtifactClass),
        (letters._TRIGGERS, Trigger),
        (letters._ACTIONS, Action),
        (letters._STATUSES, RightStatus),
        (letters._RIGHTS, RightName),
        (letters._ASKED, RightName),
        (letters._RIGHT_ARTICLES, RightName),
        (letters._LEGAL_BASES, LegalBasis),
        (letters._RECIPIENT_KINDS, RecipientKind),
        (letters._SAFEGUARDS, Safeguard),
        (letters._LOAN_STATUSES, LoanStatus),
        (letters._OUTCOMES, Outcome),
        (letters._STATUTORY_GROUNDS, StatutoryGround),
        (letters._EXTENSION_REASONS, ExtensionReason),
        (letters._LIFT_REASONS, LiftReason),
    ]
    for table, enum in tables:
        assert isinstance(table, Mapping)
        assert set(table) == set(enum), enum
