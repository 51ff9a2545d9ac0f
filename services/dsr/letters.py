"""Letters to a data subject who made a request: Finnish, Swedish and English in one plain-text document.

Every letter carries the three languages in this order, each under its own heading (`LANGUAGE_HEADINGS`),
and each language part is a complete letter on its own, so a reader who skips to their language misses
nothing. The functions are pure: they read the validated register policies (shared.policy.registry) and the small
inputs below and return the text; storing, signing and sending it is the caller's business.

- `cover_letter`: the answer to an access request (GDPR Art. 15): the Art. 15(1) and 15(2) information of
  each register that holds data about the requester, taken from the policy versions that govern their
  contacts, the research loans their data were part of, and what the copy contains.
- `no_data_letter`: the registers searched hold nothing about the requester.
- `decision_letter`: the decision per register on any request, with the ground of each refusal (Art. 12(4)).
- `extension_letter`: the time limit is extended under Art. 12(3).
- `restriction_lifted_letter`: the requester is told before a restriction is lifted (Art. 18(3)).

Every letter ends with the right to lodge a complaint with the supervisory authority (Art. 77); the decision
letter adds the right to a judicial remedy (Art. 79).

The letters hold no personal data about the requester: they are addressed generically, and the case number
is the only thing that ties one to a person. Inputs that end up in the text are checked to be single lines,
and the case number to be a code, so a name or an address cannot ride in on a free-text field. The
controller's staff are not named either: the data protection officer and contact person appear by role
and by the contact details their notice publishes, never by name.

The policies transcribe each notice's content in English (purposes, categories, sources, grounds); the
Finnish and Swedish parts quote that text as written and say so, rather than carry an unreviewed translation.

The wording is not in this module. Every phrase is in the YAML files of services/dsr/wording/, one per letter
kind plus letter.yaml (the frame every letter shares) and terms.yaml (words several letters use), with the
Finnish, Swedish and English forms side by side, so that a translator or a lawyer reviews and edits them
without reading Python: side by side because a review checks that the three parts say the same thing, one file
per letter kind because a letter is reviewed as a whole. This module declares each phrase with the
placeholders it fills in, and the files are checked against those declarations once, at import
(services.dsr.wording): a missing phrase, an unknown key or a wrong placeholder stops the service at start,
naming the file and the key. What stays here is how a letter is put together: the order of its parts, the
punctuation between a label and its value, dates and numbers, and the article of the GDPR each statement cites.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from services.dsr.wording import Catalogue, Phrase
from shared.contracts.vocabulary import ArtifactClass
from shared.policy.model import (
    Action,
    ComplaintAuthority,
    ContactPerson,
    Controller,
    LegalBasis,
    Period,
    PolicyVersion,
    Recipient,
    RecipientKind,
    RetentionRule,
    RightName,
    RightStatus,
    Safeguard,
    Trigger,
)

__all__ = [
    "LANGUAGES",
    "LANGUAGE_HEADINGS",
    "ExtensionReason",
    "Language",
    "LetterContext",
    "LiftReason",
    "LoanRecipient",
    "LoanStatus",
    "Outcome",
    "PackageContents",
    "RegisterDecision",
    "RegisterFindings",
    "StatutoryGround",
    "cover_letter",
    "decision_letter",
    "describe_period",
    "describe_retention",
    "extension_letter",
    "no_data_letter",
    "restriction_lifted_letter",
]


# ------------------------------------------------------------------------------------------------- inputs


class Language(StrEnum):
    FI = "fi"
    SV = "sv"
    EN = "en"


#: The order of the parts in every letter.
LANGUAGES: tuple[Language, ...] = (Language.FI, Language.SV, Language.EN)


class LoanStatus(StrEnum):
    OUT = "out"
    RETURNED = "returned"
    DESTROYED = "destroyed"


class Outcome(StrEnum):
    """What was decided on a request in one register (or for some of its artifact classes)."""

    GRANTED = "granted"
    REFUSED = "refused"
    NO_DATA = "no_data"


class StatutoryGround(StrEnum):
    """Refusal grounds that come from the GDPR itself rather than from a register's notice."""

    RIGHTS_OF_OTHERS = "rights_of_others"  # Art. 15(4), Art. 20(4)
    MANIFESTLY_UNFOUNDED_OR_EXCESSIVE = "manifestly_unfounded_or_excessive"  # Art. 12(5)
    SUBJECT_NOT_IDENTIFIABLE = "subject_not_identifiable"  # Art. 11(2)
    DATA_ACCURATE = "data_accurate"  # Art. 16: nothing to rectify


class ExtensionReason(StrEnum):
    """Why the Art. 12(3) time limit is extended ("taking into account the complexity and number")."""

    COMPLEX_REQUEST = "complex_request"
    NUMBER_OF_REQUESTS = "number_of_requests"
    VOLUME_OF_DATA = "volume_of_data"
    OTHERS_DATA = "others_data"
    SEVERAL_REGISTERS = "several_registers"


class LiftReason(StrEnum):
    """Why a restriction under Art. 18(1) ends."""

    ACCURACY_VERIFIED = "accuracy_verified"  # Art. 18(1)(a)
    LEGAL_CLAIMS_CONCLUDED = "legal_claims_concluded"  # Art. 18(1)(c)
    OBJECTION_DECIDED = "objection_decided"  # Art. 18(1)(d)


# A case number is a code, never free text: it is the one identifier a letter may carry.
_CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._:-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MAX_LINE = 200


def _single_line(value: str, what: str) -> str:
    # A line break in an input would let it pose as a heading or a paragraph of the letter.
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if _CONTROL.search(value):
        raise ValueError(f"{what} must be a single line of text without control characters")
    if len(value) > _MAX_LINE:
        raise ValueError(f"{what} is longer than {_MAX_LINE} characters")
    return value.strip()


@dataclass(frozen=True, slots=True)
class LetterContext:
    """The case a letter belongs to. `last_day` is the current time limit for the reply, if one runs."""

    case_number: str
    received_on: date
    dated: date
    last_day: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.case_number, str) or not _CASE_NUMBER.fullmatch(self.case_number):
            raise ValueError(
                f"case number {self.case_number!r} must be a code of letters, digits and / . _ : - "
                "(at most 64 characters)"
            )
        if self.dated < self.received_on:
            raise ValueError("a letter cannot be dated before the request was received")
        if self.last_day is not None and self.last_day < self.received_on:
            raise ValueError("the last day for the reply cannot be before the request was received")


@dataclass(frozen=True, slots=True)
class LoanRecipient:
    """A research loan that included the requester's data: who had it, under which agreement, and its state."""

    institute: str
    reference: str
    lent_from: date
    lent_until: date
    status: LoanStatus
    classes: tuple[ArtifactClass, ...] = (ArtifactClass.RECORDING,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "institute", _single_line(self.institute, "institute"))
        object.__setattr__(self, "reference", _single_line(self.reference, "loan reference"))
        object.__setattr__(self, "status", LoanStatus(self.status))
        object.__setattr__(self, "classes", tuple(ArtifactClass(c) for c in self.classes))
        if self.lent_until < self.lent_from:
            raise ValueError("a loan cannot end before it began")
        if not self.classes:
            raise ValueError("a loan lends at least one artifact class")


@dataclass(frozen=True, slots=True)
class PackageContents:
    """What the copy handed over with an access answer contains."""

    contacts: int
    recordings: int
    messages: int
    transcripts: int

    def __post_init__(self) -> None:
        for name in ("contacts", "recordings", "messages", "transcripts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class RegisterFindings:
    """One register that holds data about the requester.

    `versions` are the policy versions that govern the requester's contacts there (one per version a contact
    fell under, e.g. chosen with `version_at`). `held_classes` narrows the categories and retention periods
    listed to the artifact classes actually held; None lists everything the versions describe. `loans` are
    all research loans that included the requester's data from this register: none means none happened.
    """

    versions: tuple[PolicyVersion, ...]
    loans: tuple[LoanRecipient, ...] = ()
    held_classes: frozenset[ArtifactClass] | None = None

    def __post_init__(self) -> None:
        versions = tuple(sorted(self.versions, key=lambda v: v.effective_from))
        if not versions:
            raise ValueError("findings need the policy version(s) that govern the contacts")
        if len({v.register for v in versions}) != 1:
            raise ValueError("findings cover one register; give each register its own findings")
        if len({v.version for v in versions}) != len(versions):
            raise ValueError("a policy version is listed twice")
        object.__setattr__(self, "versions", versions)
        object.__setattr__(self, "loans", tuple(self.loans))
        if self.held_classes is not None:
            held = frozenset(ArtifactClass(c) for c in self.held_classes)
            if not held:
                raise ValueError(
                    "held_classes is empty: a register that holds nothing belongs in no_data_letter"
                )
            object.__setattr__(self, "held_classes", held)

    @property
    def register(self) -> str:
        return self.versions[0].register

    @property
    def latest(self) -> PolicyVersion:
        return self.versions[-1]


@dataclass(frozen=True, slots=True)
class RegisterDecision:
    """The decision on the request in one register.

    `classes` limits it to some artifact classes (empty: all the register's data), so a partial grant in one
    register is two decisions with disjoint classes. A refusal states its ground: the register's own ground
    for the right (Right.ground, when the policy does not simply grant it) and/or a `statutory_ground`.
    """

    version: PolicyVersion
    outcome: Outcome
    classes: tuple[ArtifactClass, ...] = ()
    statutory_ground: StatutoryGround | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "classes", tuple(ArtifactClass(c) for c in self.classes))
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("an artifact class is listed twice in one decision")
        if self.statutory_ground is not None:
            object.__setattr__(self, "statutory_ground", StatutoryGround(self.statutory_ground))
            if self.outcome is not Outcome.REFUSED:
                raise ValueError("a statutory ground is given for a refusal only")


@dataclass(frozen=True, slots=True)
class Rectified:
    """What a granted rectification changed: the customer fields corrected (by name, never their values) and
    whether a supplementary statement was added to recordings, transcripts or messages."""

    fields: tuple[str, ...] = ()
    statement: bool = False

    def __post_init__(self) -> None:
        unknown = [f for f in self.fields if f not in _FIELD_NAMES]
        if unknown:
            raise ValueError(f"unknown customer field(s): {', '.join(unknown)}")
        if not self.fields and not self.statement:
            raise ValueError("a rectification corrects a field or adds a statement")


# ------------------------------------------------------------------------------------------------ wording

# Every phrase the letters use, declared with the placeholders the code fills in; the texts are in the YAML
# files of services/dsr/wording/, checked against these declarations once, here at import, so that a broken
# catalogue stops the service at start rather than a letter on its way out.
_WORDING = Catalogue(Path(__file__).with_name("wording"), LANGUAGES)

_LETTER = _WORDING.part("letter.yaml")
_HEADING = _LETTER.phrase("language_heading")
_ARTICLE = _LETTER.phrase("gdpr_article", "article")
_ARTICLE_PARAGRAPH = _LETTER.phrase("gdpr_article_paragraph", "article", "paragraph")
_AND = _LETTER.phrase("list_and")
_CASE_NUMBER_LABEL = _LETTER.phrase("header.case_number")
_DATED = _LETTER.phrase("header.dated")
_RECEIVED = _LETTER.phrase("header.received")
_LAST_DAY = _LETTER.phrase("header.last_day")
_SALUTATION = _LETTER.phrase("header.salutation")
_ASKED = _LETTER.table("you_asked", RightName)
_CLOSING = _LETTER.phrase("closing")
_BUSINESS_ID = _LETTER.phrase("contact_details.business_id")
_POSTAL = _LETTER.phrase("contact_details.postal_address")
_VISITING = _LETTER.phrase("contact_details.visiting_address")
_PHONE = _LETTER.phrase("contact_details.phone")
_EMAIL = _LETTER.phrase("contact_details.email")
_WEBSITE = _LETTER.phrase("contact_details.website")
_CONTROLLER_LABEL = _LETTER.phrase("controller.label")
_DPO_LABEL = _LETTER.phrase("controller.data_protection_officer")
_NO_DPO = _LETTER.phrase("controller.no_data_protection_officer", "label")
_CONTACT_PERSON_LABEL = _LETTER.phrase("controller.contact_person")
_COMPLAINT_HEADING = _LETTER.phrase("complaint.heading")
_COMPLAINT = _LETTER.phrase("complaint.text", "art")
# A notice gives the authority's own name in the notice's language only; Finland's supervisory authority is
# named in all three so each part of a letter calls it by its name in that language.
_AUTHORITY_NAMES = _LETTER.table("complaint.authority_names", ["Office of the Data Protection Ombudsman"])
_JUDICIAL_REMEDY_HEADING = _LETTER.phrase("judicial_remedy.heading")
_JUDICIAL_REMEDY = _LETTER.phrase("judicial_remedy.text", "art")

_TERMS = _WORDING.part("terms.yaml")
_CLASSES = _TERMS.table("artifact_classes", ArtifactClass)
_CONCERNS = _TERMS.phrase("concerns")
# (singular, plural): "one" follows the number 1, "other" any other number, as in the CLDR plural categories.
_UNITS: Mapping[str, tuple[Phrase, Phrase]] = {
    unit: (_TERMS.phrase(f"period_units.{unit}.one"), _TERMS.phrase(f"period_units.{unit}.other"))
    for unit in ("years", "months", "days", "hours", "minutes")
}
_TRIGGERS = _TERMS.table("retention_triggers", Trigger)
_ACTIONS = _TERMS.table("retention_actions", Action)

_ACCESS = _WORDING.part("access.yaml")
_COVER_SUBJECT = _ACCESS.phrase("subject")
_COVER_OPENING = _ACCESS.phrase("opening", "asked", "art", "art3")
_COPY_LABEL = _ACCESS.phrase("copy.label")
_COPY_CONTACTS = _ACCESS.phrase("copy.contacts")
_COPY_RECORDINGS = _ACCESS.phrase("copy.recordings")
_COPY_MESSAGES = _ACCESS.phrase("copy.messages")
_COPY_TRANSCRIPTS = _ACCESS.phrase("copy.transcripts")
_ENGLISH_QUOTED = _ACCESS.phrase("quoted_in_english", languages=(Language.FI, Language.SV))
_SEVERAL_VERSIONS = _ACCESS.phrase("several_versions", "count")
_SEARCHED_WITHOUT_DATA = _ACCESS.phrase("searched_without_data")
_NOTICE = _ACCESS.phrase("notice.line", "title", "updated", "start")
_UNDATED = _ACCESS.phrase("notice.undated")
_PURPOSES_LABEL = _ACCESS.phrase("purposes.label")
_LEGAL_BASIS_LABEL = _ACCESS.phrase("legal_basis.label")
_LAW_LABEL = _ACCESS.phrase("legal_basis.law")
_LEGAL_BASES = _ACCESS.table("legal_basis.grounds", LegalBasis)
_CATEGORIES_LABEL = _ACCESS.phrase("categories.label")
_RECIPIENTS_LABEL = _ACCESS.phrase("recipients.label")
_NO_RECIPIENTS = _ACCESS.phrase("recipients.none")
_CONDITION_LABEL = _ACCESS.phrase("recipients.condition")
_LOAN_RETURNED_OR_DESTROYED = _ACCESS.phrase("recipients.temporary_loan_returned_or_destroyed")
_LOAN = _ACCESS.phrase("recipients.temporary_loan")
_RECIPIENT_KINDS = _ACCESS.table("recipients.kinds", RecipientKind)
_RETENTION_LABEL = _ACCESS.phrase("retention.label")
_SOURCES_LABEL = _ACCESS.phrase("sources.label")
_TRANSFERS_LABEL = _ACCESS.phrase("transfers.label")
_NO_TRANSFERS = _ACCESS.phrase("transfers.none")
_TRANSFERS_POSSIBLE = _ACCESS.phrase("transfers.possible")
_TRANSFER_PURPOSE_LABEL = _ACCESS.phrase("transfers.purpose")
_SAFEGUARDS_LABEL = _ACCESS.phrase("transfers.safeguards")
_STORAGE_LOCATION_LABEL = _ACCESS.phrase("transfers.storage_location")
_SAFEGUARDS = _ACCESS.table("transfers.safeguard_kinds", Safeguard)
_AUTOMATED_LABEL = _ACCESS.phrase("automated.label")
_DECISION_MAKING = _ACCESS.phrase("automated.decision_making")
_NO_DECISION_MAKING = _ACCESS.phrase("automated.no_decision_making")
_PROFILING = _ACCESS.phrase("automated.profiling")
_NO_PROFILING = _ACCESS.phrase("automated.no_profiling")
_LOGIC = _ACCESS.phrase("automated.logic")
_RIGHTS_LABEL = _ACCESS.phrase("rights.label")
_RIGHTS = _ACCESS.table("rights.names", RightName)
_STATUSES = _ACCESS.table("rights.statuses", RightStatus)
_STATUS_GROUND_LABEL = _ACCESS.table("rights.ground_labels", RightStatus)
_SUBMIT_TO_LABEL = _ACCESS.phrase("rights.submit_to")
_LOANS_LABEL = _ACCESS.phrase("loans.label")
_NO_LOANS = _ACCESS.phrase("loans.none")
# English writes the range in words; Finnish and Swedish with the en dash the code supplies.
_LOAN_LINE = _ACCESS.phrase(
    "loans.loan", "institute", "reference", "classes", "start", "end", "status", "dash", optional=["dash"]
)
_LOAN_STATUSES = _ACCESS.table("loans.statuses", LoanStatus)

_NO_DATA = _WORDING.part("no_data.yaml")
_NO_DATA_SUBJECT = _NO_DATA.phrase("subject")
_NO_DATA_OPENING = _NO_DATA.phrase("opening", "asked", "art")
_NO_DATA_RETENTION = _NO_DATA.phrase("retention_note")

_DECISION = _WORDING.part("decision.yaml")
_DECISION_SUBJECT = _DECISION.phrase("subject")
_DECISION_OPENING = _DECISION.phrase("opening", "asked", "art")
_GROUNDS_QUOTED = _DECISION.phrase("grounds_quoted_in_english", languages=(Language.FI, Language.SV))
_DECISION_LABEL = _DECISION.phrase("decision")
_OUTCOMES = _DECISION.table("outcomes", Outcome)
# What a granted erasure or objection does, so the requester knows the data go and copies are followed up.
_ERASED = _DECISION.table("erased", [RightName.ERASURE, RightName.OBJECTION], "art")
_POLICY_GROUND_LABEL = _DECISION.phrase("policy_ground")
_GROUND_LABEL = _DECISION.phrase("ground")
_STATUTORY_GROUNDS = _DECISION.table("statutory_grounds", StatutoryGround, "art")
_RECTIFIED_FIELDS = _DECISION.phrase("rectified.fields", "fields")
_RECTIFIED_STATEMENT = _DECISION.phrase("rectified.statement", "art")
_RECTIFICATION_NOTIFIED = _DECISION.phrase("rectified.recipients_notified", "art")
# The customer fields a rectification can correct, named by their names, never their values.
_FIELD_NAMES = _DECISION.table(
    "customer_fields", ["phone", "email", "name", "nickname", "personal_identity_code"]
)

_EXTENSION = _WORDING.part("extension.yaml")
_EXTENSION_SUBJECT = _EXTENSION.phrase("subject")
_EXTENSION_OPENING = _EXTENSION.phrase("opening", "asked", "art", "last_day", "new_last_day")
_EXTENSION_REASONS_LABEL = _EXTENSION.phrase("reasons_label")
_EXTENSION_REASONS = _EXTENSION.table("reasons", ExtensionReason)
_EXTENSION_REGISTERS_LABEL = _EXTENSION.phrase("registers_label")

_LIFTED = _WORDING.part("restriction_lifted.yaml")
_LIFTED_SUBJECT = _LIFTED.phrase("subject")
_LIFTED_OPENING = _LIFTED.phrase("opening", "asked", "art", "art3", "restricted_on", "lifted_on", "reason")
_LIFT_REASONS = _LIFTED.table("reasons", LiftReason)
_AFTER_LIFT = _LIFTED.phrase("after_lift")
_COMMENT_BEFORE_LIFT = _LIFTED.phrase("comment_before", "lifted_on")

_WORDING.load()

LANGUAGE_HEADINGS: Mapping[Language, str] = MappingProxyType({lang: _HEADING(lang) for lang in LANGUAGES})

# The article that grants each right, for "(GDPR Art. 17)" and its Finnish and Swedish forms.
_RIGHT_ARTICLES: Mapping[RightName, int] = {
    RightName.ACCESS: 15,
    RightName.RECTIFICATION: 16,
    RightName.ERASURE: 17,
    RightName.RESTRICTION: 18,
    RightName.PORTABILITY: 20,
    RightName.OBJECTION: 21,
}

# A statutory ground the GDPR ties to particular rights, where citing it for another would be wrong.
_STATUTORY_GROUND_RIGHTS: Mapping[StatutoryGround, frozenset[RightName]] = {
    StatutoryGround.RIGHTS_OF_OTHERS: frozenset({RightName.ACCESS, RightName.PORTABILITY}),
    StatutoryGround.DATA_ACCURATE: frozenset({RightName.RECTIFICATION}),
}

_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _date(day: date, lang: Language) -> str:
    if lang is Language.EN:
        return f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}"
    return f"{day.day}.{day.month}.{day.year}"


# Finnish and Swedish write a date range with an en dash; an escape keeps it distinguishable from a hyphen.
_RANGE_DASH = "\N{EN DASH}"


def _article(lang: Language, article: int, paragraph: int | None = None) -> str:
    if paragraph is None:
        return _ARTICLE(lang, article=article)
    return _ARTICLE_PARAGRAPH(lang, article=article, paragraph=paragraph)


def _join(items: Sequence[str], lang: Language) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {_AND(lang)} " + items[-1]


# --------------------------------------------------------------------------------------------- retention


def describe_period(period: Period, language: Language | str) -> str:
    """A retention period in words, e.g. "6 kuukautta" / "6 månader" / "6 months", "1 year and 6 months"."""
    lang = Language(language)
    parts: list[str] = []
    for unit in ("years", "months", "days", "hours", "minutes"):
        count: int = getattr(period, unit)
        if count:
            singular, plural = _UNITS[unit]
            parts.append(f"{count} {(singular if count == 1 else plural)(lang)}")
    if not parts:
        raise ValueError("a zero period has no retention to describe")
    return _join(parts, lang)


def describe_retention(rule: RetentionRule, language: Language | str) -> str:
    """A rule's period and start, e.g. "6 months from the start of the contact" (the action is not included)."""
    lang = Language(language)
    return f"{describe_period(rule.period, lang)} {_TRIGGERS[rule.trigger](lang)}"


# ------------------------------------------------------------------------------------------------ blocks


def _header(lang: Language, subject: Phrase, context: LetterContext) -> list[str]:
    heading = LANGUAGE_HEADINGS[lang]
    lines = [heading, "=" * len(heading), "", subject(lang), ""]
    lines.append(f"{_CASE_NUMBER_LABEL(lang)}: {context.case_number}")
    lines.append(f"{_DATED(lang)}: {_date(context.dated, lang)}")
    lines.append(f"{_RECEIVED(lang)}: {_date(context.received_on, lang)}")
    if context.last_day is not None:
        lines.append(f"{_LAST_DAY(lang)}: {_date(context.last_day, lang)}")
    lines += ["", _SALUTATION(lang), ""]
    return lines


def _signature(lang: Language, versions: Iterable[PolicyVersion]) -> list[str]:
    return ["", _CLOSING(lang), *_unique(v.controller.name for v in versions)]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _contact_details(lang: Language, person: ContactPerson) -> str:
    # The person's name is left out on purpose: letters name no one, and the published address reaches the role.
    details = []
    if person.email is not None:
        details.append(f"{_EMAIL(lang).lower()} {person.email}")
    if person.phone is not None:
        details.append(f"{_PHONE(lang).lower()} {person.phone}")
    return ", ".join(details)


def _controller_block(lang: Language, controller: Controller) -> list[str]:
    # A comma, not brackets: short names such as "PRS (PRH)" bring brackets of their own.
    title = (
        controller.name if controller.short_name is None else f"{controller.name}, {controller.short_name}"
    )
    lines = [f"{_CONTROLLER_LABEL(lang)}: {title}"]
    for label, value in (
        (_BUSINESS_ID, controller.business_id),
        (_POSTAL, controller.postal_address),
        (_VISITING, controller.visiting_address),
        (_PHONE, controller.phone),
        (_EMAIL, controller.email),
    ):
        if value is not None:
            lines.append(f"  {label(lang)}: {value}")
    dpo = controller.data_protection_officer
    dpo_label = _DPO_LABEL(lang)
    if dpo is not None and (dpo.email or dpo.phone):
        lines.append(f"{dpo_label}: {_contact_details(lang, dpo)}")
    else:
        lines.append(_NO_DPO(lang, label=dpo_label))
        contact = controller.contact_person
        if contact is not None and (contact.email or contact.phone):
            role = f"{contact.role}, " if contact.role else ""
            lines.append(f"{_CONTACT_PERSON_LABEL(lang)}: {role}{_contact_details(lang, contact)}")
    return lines


def _notice_line(lang: Language, version: PolicyVersion) -> str:
    notice = version.notice
    updated = _date(notice.updated, lang) if notice.updated is not None else _UNDATED(lang)
    return _NOTICE(lang, title=notice.title, updated=updated, start=_date(version.effective_from, lang))


def _bullets(items: Iterable[str], indent: str = "") -> list[str]:
    return [f"{indent}- {item}" for item in items]


def _classes_text(lang: Language, classes: Iterable[ArtifactClass]) -> str:
    return ", ".join(_CLASSES[c](lang) for c in classes)


def _legal_basis_block(lang: Language, version: PolicyVersion) -> list[str]:
    lines = [_LEGAL_BASIS_LABEL(lang) + ":"]
    for ground in version.legal_basis:
        line = f"{_LEGAL_BASES[ground.ground](lang)} ({ground.article})"
        if ground.law is not None:
            line += f"; {_LAW_LABEL(lang)}: {ground.law}"
        lines += _bullets([line])
    return lines


def _categories_block(
    lang: Language, version: PolicyVersion, held: frozenset[ArtifactClass] | None
) -> list[str]:
    # A category kept in another register is that register's to report, in its own findings.
    categories = [
        c
        for c in version.data_categories
        if c.artifact_classes and (held is None or held.intersection(c.artifact_classes))
    ]
    return [f"{_CATEGORIES_LABEL(lang)}:", *_bullets(f"{c.name}: {', '.join(c.items)}" for c in categories)]


def _recipient_line(lang: Language, recipient: Recipient) -> str:
    kind = _RECIPIENT_KINDS[recipient.kind](lang)
    # "Research institute (research institute)" says nothing twice over.
    name = recipient.name if recipient.name.casefold() == kind.casefold() else f"{recipient.name} ({kind})"
    line = f"{name}: {recipient.purpose}"
    if recipient.condition is not None:
        line += f" {_CONDITION_LABEL(lang)}: {recipient.condition}"
    if recipient.artifact_classes:
        line += f" ({_CONCERNS(lang)}: {_classes_text(lang, recipient.artifact_classes)})"
    if recipient.temporary_loan:
        line += " " + (_LOAN_RETURNED_OR_DESTROYED if recipient.return_or_destroy else _LOAN)(lang)
    return line


def _recipients_block(lang: Language, version: PolicyVersion) -> list[str]:
    label = _RECIPIENTS_LABEL(lang)
    if not version.recipients:
        return [f"{label}: {_NO_RECIPIENTS(lang)}"]
    return [f"{label}:", *_bullets(_recipient_line(lang, r) for r in version.recipients)]


def _retention_lines(
    lang: Language, version: PolicyVersion, held: frozenset[ArtifactClass] | None, indent: str = ""
) -> list[str]:
    rules = [r for r in version.retention if held is None or r.artifact_class in held]
    return _bullets(
        (
            f"{_CLASSES[r.artifact_class](lang)}: {describe_retention(r, lang)}, {_ACTIONS[r.action](lang)}."
            for r in rules
        ),
        indent,
    )


def _transfers_block(lang: Language, version: PolicyVersion) -> list[str]:
    label = _TRANSFERS_LABEL(lang)
    transfers = version.transfers_outside_eea
    if not transfers.allowed:
        lines = [f"{label}: {_NO_TRANSFERS(lang)}"]
    else:
        lines = [f"{label}: {_TRANSFERS_POSSIBLE(lang)}"]
        if transfers.purpose is not None:
            lines.append(f"  {_TRANSFER_PURPOSE_LABEL(lang)}: {transfers.purpose}")
        if transfers.processor is not None:
            lines.append(
                f"  {_RECIPIENT_KINDS[RecipientKind.PROCESSOR](lang).capitalize()}: {transfers.processor}"
            )
        safeguards = [_SAFEGUARDS[s](lang) for s in transfers.safeguards]
        lines.append(f"  {_SAFEGUARDS_LABEL(lang)}: {_join(safeguards, lang)}")
        if transfers.storage_location is not None:
            lines.append(f"  {_STORAGE_LOCATION_LABEL(lang)}: {transfers.storage_location}")
    if transfers.note is not None:
        lines.append(f"  {transfers.note}")
    return lines


def _automated_block(lang: Language, version: PolicyVersion) -> list[str]:
    label = _AUTOMATED_LABEL(lang)
    decisions = version.automated_decisions
    adm = (_DECISION_MAKING if decisions.automated_decision_making else _NO_DECISION_MAKING)(lang)
    profiling = (_PROFILING if decisions.profiling else _NO_PROFILING)(lang)
    line = f"{label}: {adm} {profiling}"
    if decisions.automated_decision_making or decisions.profiling:
        # Art. 15(1)(h) asks for the logic involved, which the policy does not record.
        line += " " + _LOGIC(lang)
    return [line]


def _right_line(lang: Language, version: PolicyVersion, right: RightName) -> str:
    granted = version.rights.of(right)
    line = f"{_RIGHTS[right](lang)} ({_article(lang, _RIGHT_ARTICLES[right])}): {_STATUSES[granted.status](lang)}."
    if granted.status is not RightStatus.GRANTED and granted.ground is not None:
        line += f" {_STATUS_GROUND_LABEL[granted.status](lang)}: {granted.ground}"
    return line


def _rights_block(lang: Language, version: PolicyVersion) -> list[str]:
    lines = [_RIGHTS_LABEL(lang) + ":"]
    lines += _bullets(_right_line(lang, version, right) for right in _RIGHT_ARTICLES)
    if version.rights.submit_to is not None:
        lines.append(f"{_SUBMIT_TO_LABEL(lang)}: {version.rights.submit_to}")
    return lines


def _version_block(
    lang: Language, version: PolicyVersion, held: frozenset[ArtifactClass] | None
) -> list[str]:
    lines = [_notice_line(lang, version)]
    lines += _controller_block(lang, version.controller)
    lines += [_PURPOSES_LABEL(lang) + ":"]
    lines += _bullets(version.purposes)
    lines += _legal_basis_block(lang, version)
    lines += _categories_block(lang, version, held)
    lines += _recipients_block(lang, version)
    lines += [_RETENTION_LABEL(lang) + ":"]
    lines += _retention_lines(lang, version, held)
    lines += [_SOURCES_LABEL(lang) + ":"]
    lines += _bullets(version.sources)
    lines += _transfers_block(lang, version)
    lines += _automated_block(lang, version)
    lines += _rights_block(lang, version)
    return lines


def _loans_block(lang: Language, findings: RegisterFindings) -> list[str]:
    lends = any(r.temporary_loan for v in findings.versions for r in v.recipients)
    if not findings.loans and not lends:
        return []
    label = _LOANS_LABEL(lang)
    if not findings.loans:
        return [f"{label}: {_NO_LOANS(lang)}"]
    lines = [f"{label}:"]
    for loan in findings.loans:
        lines += _bullets(
            [
                _LOAN_LINE(
                    lang,
                    institute=loan.institute,
                    reference=loan.reference,
                    classes=_classes_text(lang, loan.classes),
                    start=_date(loan.lent_from, lang),
                    end=_date(loan.lent_until, lang),
                    dash=_RANGE_DASH,
                    status=_LOAN_STATUSES[loan.status](lang),
                )
            ]
        )
    return lines


def _authority_lines(lang: Language, versions: Sequence[PolicyVersion]) -> list[str]:
    # Registers name the same authority in their notice's language; one entry per authority, with the
    # address as written in a notice in the letter's language when there is one.
    groups: dict[str, list[tuple[str, ComplaintAuthority]]] = {}
    for version in versions:
        authority = version.rights.complaint_authority
        groups.setdefault(authority.name, []).append((version.notice.language.value, authority))
    lines: list[str] = []
    for name, variants in groups.items():
        chosen = next((a for notice_lang, a in variants if notice_lang == lang.value), variants[0][1])
        local_names = _unique(
            a.local_name for a in [chosen, *(a for _, a in variants)] if a.local_name is not None
        )
        known = _AUTHORITY_NAMES.get(name)
        if known is not None:
            title = name if lang is Language.EN else f"{known(lang)} ({name})"
        elif not local_names:
            title = name
        elif lang is Language.EN:
            title = f"{name} ({' / '.join(local_names)})"
        else:
            title = f"{' / '.join(local_names)} ({name})"
        lines.append(title)
        for label, value in (
            (_POSTAL, chosen.postal_address),
            (_VISITING, chosen.visiting_address),
            (_EMAIL, chosen.email),
            (_PHONE, chosen.phone),
            (_WEBSITE, chosen.website),
        ):
            if value is not None:
                lines.append(f"  {label(lang)}: {value}")
    return lines


def _complaint_block(lang: Language, versions: Sequence[PolicyVersion]) -> list[str]:
    text = _COMPLAINT(lang, art=_article(lang, 77))
    return ["", _COMPLAINT_HEADING(lang), "", text, *_authority_lines(lang, versions)]


def _judicial_remedy_block(lang: Language) -> list[str]:
    return ["", _JUDICIAL_REMEDY_HEADING(lang), "", _JUDICIAL_REMEDY(lang, art=_article(lang, 79))]


def _register_title(version: PolicyVersion) -> str:
    return f"{version.register_name} ({version.controller.name})"


def _document(parts: Mapping[Language, list[str]]) -> str:
    text = "\n\n\n".join("\n".join(parts[lang]).strip("\n") for lang in LANGUAGES)
    return text + "\n"


def _distinct_registers(versions: Sequence[PolicyVersion], what: str) -> None:
    if not versions:
        raise ValueError(f"{what}: at least one register is needed")
    registers = [v.register for v in versions]
    if len(set(registers)) != len(registers):
        raise ValueError(f"{what}: a register is listed twice")


# ------------------------------------------------------------------------------------------------ letters


def cover_letter(
    context: LetterContext,
    registers: Sequence[RegisterFindings],
    package: PackageContents,
    *,
    searched_without_data: Sequence[PolicyVersion] = (),
) -> str:
    """The answer to an access request: Art. 15(1)-(3) for each register that holds data about the requester,
    and the confirmation that the other registers searched hold none (Art. 15(1): "whether or not")."""
    if not registers:
        raise ValueError("no register holds data about the requester: send no_data_letter instead")
    _distinct_registers([*[f.latest for f in registers], *searched_without_data], "cover_letter")
    all_versions = [v for f in registers for v in f.versions]
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, _COVER_SUBJECT, context)
        lines.append(
            _COVER_OPENING(
                lang,
                asked=_ASKED[RightName.ACCESS](lang),
                art=_article(lang, 15),
                art3=_article(lang, 15, 3),
            )
        )
        lines += ["", _COPY_LABEL(lang) + ":"]
        lines += _bullets(
            [
                f"{_COPY_CONTACTS(lang)}: {package.contacts}",
                f"{_COPY_RECORDINGS(lang)}: {package.recordings}",
                f"{_COPY_MESSAGES(lang)}: {package.messages}",
                f"{_COPY_TRANSCRIPTS(lang)}: {package.transcripts}",
            ]
        )
        if lang is not Language.EN:
            lines += ["", _ENGLISH_QUOTED(lang)]
        for number, findings in enumerate(registers, start=1):
            lines += ["", f"{number}. {_register_title(findings.latest)}"]
            several = len(findings.versions) > 1
            if several:
                lines.append(_SEVERAL_VERSIONS(lang, count=len(findings.versions)))
            for index, version in enumerate(findings.versions, start=1):
                if several:
                    lines += ["", f"{number}.{index}."]
                lines += _version_block(lang, version, findings.held_classes)
            loans = _loans_block(lang, findings)
            if loans:
                lines += ["", *loans]
        if searched_without_data:
            lines += ["", _SEARCHED_WITHOUT_DATA(lang)]
            lines += _bullets(_register_title(v) for v in searched_without_data)
        lines += _complaint_block(lang, all_versions)
        lines += _signature(lang, all_versions)
        parts[lang] = lines
    return _document(parts)


def no_data_letter(
    context: LetterContext, searched: Sequence[PolicyVersion], *, request: RightName = RightName.ACCESS
) -> str:
    """The registers searched hold no personal data about the requester."""
    _distinct_registers(searched, "no_data_letter")
    request = RightName(request)
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, _NO_DATA_SUBJECT, context)
        lines.append(
            _NO_DATA_OPENING(lang, asked=_ASKED[request](lang), art=_article(lang, _RIGHT_ARTICLES[request]))
        )
        lines += [""]
        lines += _bullets(f"{v.register_name} ({v.controller.name})" for v in searched)
        lines += ["", _NO_DATA_RETENTION(lang)]
        lines += _complaint_block(lang, searched)
        lines += _signature(lang, searched)
        parts[lang] = lines
    return _document(parts)


def _rectified_lines(lang: Language, rectified: Rectified) -> list[str]:
    lines = [""]
    if rectified.fields:
        lines.append(
            _RECTIFIED_FIELDS(lang, fields=_join([_FIELD_NAMES[f](lang) for f in rectified.fields], lang))
        )
    if rectified.statement:
        lines.append(_RECTIFIED_STATEMENT(lang, art=_article(lang, 16)))
    lines.append(_RECTIFICATION_NOTIFIED(lang, art=_article(lang, 19)))
    return lines


def decision_letter(
    context: LetterContext,
    request: RightName,
    decisions: Sequence[RegisterDecision],
    *,
    rectified: Rectified | None = None,
) -> str:
    """The decision on a request per register, with the ground of each refusal (Art. 12(4))."""
    request = RightName(request)
    if not decisions:
        raise ValueError("decision_letter needs at least one decision")
    _check_decisions(request, decisions)
    versions = _unique_versions(d.version for d in decisions)
    quotes_policy = any(
        d.outcome is Outcome.REFUSED and _policy_ground(d.version, request) for d in decisions
    )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, _DECISION_SUBJECT, context)
        lines.append(
            _DECISION_OPENING(lang, asked=_ASKED[request](lang), art=_article(lang, _RIGHT_ARTICLES[request]))
        )
        if quotes_policy and lang is not Language.EN:
            lines += ["", _GROUNDS_QUOTED(lang)]
        for number, decision in enumerate(decisions, start=1):
            lines += ["", f"{number}. {_register_title(decision.version)}"]
            lines += _decision_lines(lang, request, decision)
        if rectified is not None:
            lines += _rectified_lines(lang, rectified)
        lines += _complaint_block(lang, versions)
        lines += _judicial_remedy_block(lang)
        lines += _signature(lang, versions)
        parts[lang] = lines
    return _document(parts)


def _unique_versions(versions: Iterable[PolicyVersion]) -> list[PolicyVersion]:
    return list({v.id: v for v in versions}.values())


def _check_decisions(request: RightName, decisions: Sequence[RegisterDecision]) -> None:
    covered: dict[str, list[frozenset[ArtifactClass] | None]] = {}
    for decision in decisions:
        scope = frozenset(decision.classes) or None
        for other in covered.get(decision.version.register, []):
            if scope is None or other is None or scope & other:
                raise ValueError(
                    f"two decisions cover the same data in {decision.version.register}: "
                    "split a partial decision by disjoint artifact classes"
                )
        covered.setdefault(decision.version.register, []).append(scope)
        if decision.outcome is not Outcome.REFUSED:
            continue
        if _policy_ground(decision.version, request) is None and decision.statutory_ground is None:
            raise ValueError(
                f"{decision.version.register} grants the {request.value} right in its policy: a refusal there "
                "needs a statutory_ground"
            )
        ground = decision.statutory_ground
        allowed = _STATUTORY_GROUND_RIGHTS.get(ground) if ground is not None else None
        if allowed is not None and request not in allowed:
            raise ValueError(f"{ground} is not a ground for refusing a {request.value} request")


def _policy_ground(version: PolicyVersion, request: RightName) -> str | None:
    """The register's own ground for not simply granting the right, if it has one."""
    right = version.rights.of(request)
    return right.ground if right.status is not RightStatus.GRANTED else None


def _decision_lines(lang: Language, request: RightName, decision: RegisterDecision) -> list[str]:
    outcome = _OUTCOMES[decision.outcome](lang)
    line = f"{_DECISION_LABEL(lang)}: {outcome}"
    if decision.classes:
        line += f" ({_CONCERNS(lang)}: {_classes_text(lang, decision.classes)})"
    lines = [line + "."]
    if decision.outcome is Outcome.GRANTED and request in _ERASED:
        lines.append(_ERASED[request](lang, art=_article(lang, 19)))
    if decision.outcome is not Outcome.REFUSED:
        return lines
    policy_ground = _policy_ground(decision.version, request)
    if policy_ground is not None:
        lines.append(f"{_POLICY_GROUND_LABEL(lang)}: {policy_ground}")
    if decision.statutory_ground is not None:
        ground = _STATUTORY_GROUNDS[decision.statutory_ground](
            lang, art=_statutory_article(lang, decision.statutory_ground, request)
        )
        lines.append(f"{_GROUND_LABEL(lang)}: {ground}")
    return lines


def _statutory_article(lang: Language, ground: StatutoryGround, request: RightName) -> str:
    if ground is StatutoryGround.RIGHTS_OF_OTHERS:
        return _article(lang, 20, 4) if request is RightName.PORTABILITY else _article(lang, 15, 4)
    if ground is StatutoryGround.MANIFESTLY_UNFOUNDED_OR_EXCESSIVE:
        return _article(lang, 12, 5)
    if ground is StatutoryGround.SUBJECT_NOT_IDENTIFIABLE:
        return _article(lang, 11, 2)
    return _article(lang, 16)


def extension_letter(
    context: LetterContext,
    request: RightName,
    registers: Sequence[PolicyVersion],
    *,
    reasons: Sequence[ExtensionReason],
    new_last_day: date,
) -> str:
    """The time limit is extended by up to two months under Art. 12(3), with the reasons and the new last day.

    `context.last_day` is the time limit being extended; the new last day itself comes from the deadline
    calendar, which knows the month arithmetic and the holidays.
    """
    request = RightName(request)
    _distinct_registers(registers, "extension_letter")
    if context.last_day is None:
        raise ValueError("an extension needs the current last day (context.last_day)")
    if new_last_day <= context.last_day:
        raise ValueError("the new last day must be after the current last day")
    if context.dated > context.last_day:
        # Art. 12(3): the extension must be notified "within one month of receipt of the request".
        raise ValueError("an extension must be notified within the original time limit")
    reasons = list(dict.fromkeys(ExtensionReason(r) for r in reasons))
    if not reasons:
        raise ValueError("an extension states its reasons")
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, _EXTENSION_SUBJECT, context)
        lines.append(
            _EXTENSION_OPENING(
                lang,
                asked=_ASKED[request](lang),
                art=_article(lang, _RIGHT_ARTICLES[request]),
                last_day=_date(context.last_day, lang),
                new_last_day=_date(new_last_day, lang),
            )
        )
        lines += ["", _EXTENSION_REASONS_LABEL(lang)]
        lines += _bullets(_EXTENSION_REASONS[r](lang) for r in reasons)
        lines += ["", _EXTENSION_REGISTERS_LABEL(lang)]
        lines += _bullets(_register_title(v) for v in registers)
        lines += _complaint_block(lang, registers)
        lines += _signature(lang, registers)
        parts[lang] = lines
    return _document(parts)


def restriction_lifted_letter(
    context: LetterContext,
    registers: Sequence[PolicyVersion],
    *,
    restricted_on: date,
    lifted_on: date,
    reason: LiftReason,
) -> str:
    """Notice under Art. 18(3), sent before a restriction of processing is lifted on `lifted_on`."""
    _distinct_registers(registers, "restriction_lifted_letter")
    reason = LiftReason(reason)
    if restricted_on < context.received_on:
        raise ValueError("a restriction cannot start before the request for it was received")
    if restricted_on > context.dated:
        raise ValueError("the restriction must already be in place when the letter is dated")
    if lifted_on <= context.dated:
        # Art. 18(3): the data subject "shall be informed ... before the restriction of processing is lifted".
        raise ValueError(
            "the requester must be told before the restriction is lifted: lifted_on is after dated"
        )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, _LIFTED_SUBJECT, context)
        lines.append(
            _LIFTED_OPENING(
                lang,
                asked=_ASKED[RightName.RESTRICTION](lang),
                art=_article(lang, 18),
                art3=_article(lang, 18, 3),
                restricted_on=_date(restricted_on, lang),
                lifted_on=_date(lifted_on, lang),
                reason=_LIFT_REASONS[reason](lang),
            )
        )
        lines += ["", _AFTER_LIFT(lang)]
        for version in registers:
            lines += ["", _register_title(version)]
            lines += _retention_lines(lang, version, None, indent="  ")
        lines += ["", _COMMENT_BEFORE_LIFT(lang, lifted_on=_date(lifted_on, lang))]
        seen: set[str] = set()
        for version in registers:
            if version.controller.name not in seen:
                seen.add(version.controller.name)
                lines += _controller_block(lang, version.controller)
        lines += _complaint_block(lang, registers)
        lines += _signature(lang, registers)
        parts[lang] = lines
    return _document(parts)
