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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from types import MappingProxyType

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

LANGUAGE_HEADINGS: Mapping[Language, str] = MappingProxyType(
    {Language.FI: "SUOMEKSI", Language.SV: "PÅ SVENSKA", Language.EN: "IN ENGLISH"}
)


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


# --------------------------------------------------------------------------------------------- phrasebook


@dataclass(frozen=True, slots=True)
class _Text:
    """One phrase in the three languages; placeholders are filled with str.format."""

    fi: str
    sv: str
    en: str

    def __call__(self, lang: Language, /, **values: object) -> str:
        template: str = getattr(self, lang.value)
        return template.format(**values) if values else template


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
    if lang is Language.FI:
        if paragraph is None:
            return f"tietosuoja-asetuksen {article} artikla"
        return f"tietosuoja-asetuksen {article} artiklan {paragraph} kohta"
    if lang is Language.SV:
        where = str(article) if paragraph is None else f"{article}.{paragraph}"
        return f"artikel {where} i dataskyddsförordningen"
    return f"GDPR Art. {article}" if paragraph is None else f"GDPR Art. {article}({paragraph})"


def _join(items: Sequence[str], lang: Language) -> str:
    last = {Language.FI: " ja ", Language.SV: " och ", Language.EN: " and "}[lang]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + last + items[-1]


# (singular, plural) per language. Finnish takes the partitive after numbers above one ("6 kuukautta").
_UNITS: Mapping[str, tuple[_Text, _Text]] = {
    "years": (_Text("vuosi", "år", "year"), _Text("vuotta", "år", "years")),
    "months": (_Text("kuukausi", "månad", "month"), _Text("kuukautta", "månader", "months")),
    "days": (_Text("päivä", "dag", "day"), _Text("päivää", "dagar", "days")),
    "hours": (_Text("tunti", "timme", "hour"), _Text("tuntia", "timmar", "hours")),
    "minutes": (_Text("minuutti", "minut", "minute"), _Text("minuuttia", "minuter", "minutes")),
}

_TRIGGERS: Mapping[Trigger, _Text] = {
    Trigger.CONTACT_START: _Text(
        "yhteydenoton alkamisesta", "från kontaktens början", "from the start of the contact"
    ),
    Trigger.CONTACT_END: _Text(
        "yhteydenoton päättymisestä", "från kontaktens slut", "from the end of the contact"
    ),
    Trigger.CASE_CLOSED: _Text(
        "asian käsittelyn päättymisestä", "från att ärendet avslutades", "from the closing of the case"
    ),
    Trigger.MESSAGE_SENT: _Text(
        "viestin lähettämisestä", "från att meddelandet skickades", "from when the message was sent"
    ),
}

_ACTIONS: Mapping[Action, _Text] = {
    Action.DELETE: _Text(
        "minkä jälkeen tiedot poistetaan", "därefter raderas uppgifterna", "after which the data are deleted"
    ),
    Action.REDACT: _Text(
        "minkä jälkeen tiedot poistetaan viestistä (viestin muu sisältö säilyy)",
        "därefter tas uppgifterna bort ur meddelandet (resten av meddelandet sparas)",
        "after which they are removed from the message (the rest of the message is kept)",
    ),
}

_CLASSES: Mapping[ArtifactClass, _Text] = {
    ArtifactClass.RECORDING: _Text("tallenteet", "inspelningar", "recordings"),
    ArtifactClass.CONTACT_HISTORY: _Text("kontaktihistoria", "kontakthistorik", "contact history"),
    ArtifactClass.MESSAGES: _Text(
        "viestit ja keskustelut", "meddelanden och chattsamtal", "messages and conversations"
    ),
    ArtifactClass.CHATBOT_IDENTIFIERS: _Text(
        "chatbotiin kirjoitetut numeeriset tunnistetiedot",
        "numeriska identifieringsuppgifter som skrivits i chattboten",
        "numeric identifiers typed into the chatbot",
    ),
    ArtifactClass.PARTICIPANT_DATA: _Text(
        "keskustelun osallistujatiedot", "deltagaruppgifter", "participant data"
    ),
    ArtifactClass.SURVEY_ANSWERS: _Text("kyselyvastaukset", "enkätsvar", "survey answers"),
    ArtifactClass.CASE_DATA: _Text("asian tiedot", "ärendeuppgifter", "case data"),
    ArtifactClass.ATTACHMENTS: _Text("liitteet", "bilagor", "attachments"),
    ArtifactClass.IDENTIFICATION: _Text("tunnistustiedot", "identifieringsuppgifter", "identification data"),
}

_LEGAL_BASES: Mapping[LegalBasis, _Text] = {
    LegalBasis.CONSENT: _Text("rekisteröidyn suostumus", "den registrerades samtycke", "consent"),
    LegalBasis.CONTRACT: _Text(
        "sopimuksen täytäntöönpano", "fullgörande av ett avtal", "performance of a contract"
    ),
    LegalBasis.LEGAL_OBLIGATION: _Text(
        "rekisterinpitäjän lakisääteisen velvoitteen noudattaminen",
        "en rättslig förpliktelse som åvilar den personuppgiftsansvarige",
        "compliance with a legal obligation of the controller",
    ),
    LegalBasis.VITAL_INTERESTS: _Text(
        "elintärkeiden etujen suojaaminen",
        "skydd av grundläggande intressen",
        "protection of vital interests",
    ),
    LegalBasis.PUBLIC_TASK: _Text(
        "yleistä etua koskevan tehtävän suorittaminen tai julkisen vallan käyttäminen",
        "en uppgift av allmänt intresse eller myndighetsutövning",
        "performance of a task in the public interest or in the exercise of official authority",
    ),
    LegalBasis.LEGITIMATE_INTERESTS: _Text(
        "oikeutettujen etujen toteuttaminen", "berättigat intresse", "legitimate interests"
    ),
}

_RECIPIENT_KINDS: Mapping[RecipientKind, _Text] = {
    RecipientKind.RESEARCH_INSTITUTE: _Text("tutkimuslaitos", "forskningsinstitut", "research institute"),
    RecipientKind.AUTHORITY: _Text("viranomainen", "myndighet", "authority"),
    RecipientKind.POLICE: _Text("poliisi", "polisen", "police"),
    RecipientKind.PROCESSOR: _Text("henkilötietojen käsittelijä", "personuppgiftsbiträde", "processor"),
}

_SAFEGUARDS: Mapping[Safeguard, _Text] = {
    Safeguard.ADEQUACY_DECISION: _Text(
        "Euroopan komission päätös tietosuojan riittävyydestä",
        "Europeiska kommissionens beslut om adekvat skyddsnivå",
        "an adequacy decision of the European Commission",
    ),
    Safeguard.STANDARD_CONTRACTUAL_CLAUSES: _Text(
        "EU:n vakiosopimuslausekkeet", "EU:s standardavtalsklausuler", "the EU standard contractual clauses"
    ),
    Safeguard.BINDING_CORPORATE_RULES: _Text(
        "yritystä koskevat sitovat säännöt", "bindande företagsbestämmelser", "binding corporate rules"
    ),
}

# The article that grants each right, for "(GDPR Art. 17)" and its Finnish and Swedish forms.
_RIGHT_ARTICLES: Mapping[RightName, int] = {
    RightName.ACCESS: 15,
    RightName.RECTIFICATION: 16,
    RightName.ERASURE: 17,
    RightName.RESTRICTION: 18,
    RightName.PORTABILITY: 20,
    RightName.OBJECTION: 21,
}

_RIGHTS: Mapping[RightName, _Text] = {
    RightName.ACCESS: _Text("oikeus saada pääsy tietoihin", "rätt till tillgång", "right of access"),
    RightName.RECTIFICATION: _Text(
        "oikeus tietojen oikaisemiseen", "rätt till rättelse", "right to rectification"
    ),
    RightName.RESTRICTION: _Text(
        "oikeus käsittelyn rajoittamiseen",
        "rätt till begränsning av behandling",
        "right to restriction of processing",
    ),
    RightName.ERASURE: _Text("oikeus tietojen poistamiseen", "rätt till radering", "right to erasure"),
    RightName.OBJECTION: _Text(
        "oikeus vastustaa käsittelyä", "rätt att göra invändningar", "right to object"
    ),
    RightName.PORTABILITY: _Text(
        "oikeus siirtää tiedot järjestelmästä toiseen",
        "rätt till dataportabilitet",
        "right to data portability",
    ),
}

_ASKED: Mapping[RightName, _Text] = {
    RightName.ACCESS: _Text(
        "Pyysit saada pääsyn sinua koskeviin henkilötietoihin",
        "Du begärde tillgång till dina personuppgifter",
        "You asked for access to your personal data",
    ),
    RightName.RECTIFICATION: _Text(
        "Pyysit sinua koskevien henkilötietojen oikaisemista",
        "Du begärde rättelse av dina personuppgifter",
        "You asked for your personal data to be rectified",
    ),
    RightName.RESTRICTION: _Text(
        "Pyysit sinua koskevien henkilötietojen käsittelyn rajoittamista",
        "Du begärde begränsning av behandlingen av dina personuppgifter",
        "You asked for the processing of your personal data to be restricted",
    ),
    RightName.ERASURE: _Text(
        "Pyysit sinua koskevien henkilötietojen poistamista",
        "Du begärde radering av dina personuppgifter",
        "You asked for your personal data to be erased",
    ),
    RightName.OBJECTION: _Text(
        "Vastustit sinua koskevien henkilötietojen käsittelyä",
        "Du invände mot behandlingen av dina personuppgifter",
        "You objected to the processing of your personal data",
    ),
    RightName.PORTABILITY: _Text(
        "Pyysit saada sinua koskevat henkilötiedot siirrettäviksi järjestelmästä toiseen",
        "Du begärde att få dina personuppgifter överförda till ett annat system",
        "You asked for your personal data to be transmitted to another system",
    ),
}

_STATUSES: Mapping[RightStatus, _Text] = {
    RightStatus.GRANTED: _Text("käytettävissä", "gäller", "available"),
    RightStatus.CONDITIONAL: _Text(
        "käytettävissä tietyin edellytyksin", "gäller på vissa villkor", "available under conditions"
    ),
    RightStatus.REFUSED: _Text(
        "ei käytettävissä tässä rekisterissä",
        "gäller inte i detta register",
        "not available in this register",
    ),
    RightStatus.NOT_APPLICABLE: _Text(
        "ei sovellu tähän käsittelyyn",
        "tillämpas inte på denna behandling",
        "does not apply to this processing",
    ),
}

_STATUS_GROUND_LABEL: Mapping[RightStatus, _Text] = {
    RightStatus.GRANTED: _Text("Huomautus", "Anmärkning", "Note"),
    RightStatus.CONDITIONAL: _Text("Edellytykset", "Villkor", "Conditions"),
    RightStatus.REFUSED: _Text("Peruste", "Grund", "Ground"),
    RightStatus.NOT_APPLICABLE: _Text("Peruste", "Grund", "Ground"),
}

_LOAN_STATUSES: Mapping[LoanStatus, _Text] = {
    LoanStatus.OUT: _Text(
        "tiedot ovat edelleen tutkimuslaitoksella",
        "uppgifterna finns fortfarande hos forskningsinstitutet",
        "the data are still with the institute",
    ),
    LoanStatus.RETURNED: _Text(
        "tiedot on palautettu", "uppgifterna har återlämnats", "the data have been returned"
    ),
    LoanStatus.DESTROYED: _Text(
        "tiedot on hävitetty", "uppgifterna har förstörts", "the data have been destroyed"
    ),
}

_OUTCOMES: Mapping[Outcome, _Text] = {
    Outcome.GRANTED: _Text("pyyntösi hyväksytään", "din begäran bifalls", "your request is granted"),
    Outcome.REFUSED: _Text("pyyntöäsi ei hyväksytä", "din begäran avslås", "your request is refused"),
    Outcome.NO_DATA: _Text(
        "rekisterissä ei ole sinua koskevia tietoja",
        "registret innehåller inga uppgifter om dig",
        "the register holds no data about you",
    ),
}

_STATUTORY_GROUNDS: Mapping[StatutoryGround, _Text] = {
    StatutoryGround.RIGHTS_OF_OTHERS: _Text(
        "Tietojen luovuttaminen ei saa vaikuttaa haitallisesti muiden henkilöiden oikeuksiin ja vapauksiin, "
        "joten muita henkilöitä koskevat tiedot on jätetty pois ({art}).",
        "Utlämnandet får inte inverka negativt på andra personers rättigheter och friheter, och därför har "
        "uppgifter om andra personer utelämnats ({art}).",
        "Disclosure must not adversely affect the rights and freedoms of others, so data about other people "
        "have been left out ({art}).",
    ),
    StatutoryGround.MANIFESTLY_UNFOUNDED_OR_EXCESSIVE: _Text(
        "Pyyntö on ilmeisen perusteeton tai kohtuuton ({art}).",
        "Begäran är uppenbart ogrundad eller orimlig ({art}).",
        "The request is manifestly unfounded or excessive ({art}).",
    ),
    StatutoryGround.SUBJECT_NOT_IDENTIFIABLE: _Text(
        "Emme pysty tunnistamaan sinua rekisterin tiedoista ({art}). Voit antaa lisätietoja, joiden avulla "
        "tiedot voidaan yhdistää sinuun.",
        "Vi kan inte identifiera dig i registrets uppgifter ({art}). Du kan lämna ytterligare uppgifter som "
        "gör det möjligt att koppla uppgifterna till dig.",
        "We cannot identify you in the register's data ({art}). You may provide additional information that "
        "enables us to link the data to you.",
    ),
    StatutoryGround.DATA_ACCURATE: _Text(
        "Tiedot ovat tarkistuksen perusteella paikkansapitäviä, joten oikaistavaa ei ole ({art}).",
        "Uppgifterna är enligt kontrollen riktiga, så det finns inget att rätta ({art}).",
        "The data were checked and are accurate, so there is nothing to rectify ({art}).",
    ),
}

# A statutory ground the GDPR ties to particular rights, where citing it for another would be wrong.
_STATUTORY_GROUND_RIGHTS: Mapping[StatutoryGround, frozenset[RightName]] = {
    StatutoryGround.RIGHTS_OF_OTHERS: frozenset({RightName.ACCESS, RightName.PORTABILITY}),
    StatutoryGround.DATA_ACCURATE: frozenset({RightName.RECTIFICATION}),
}

_EXTENSION_REASONS: Mapping[ExtensionReason, _Text] = {
    ExtensionReason.COMPLEX_REQUEST: _Text(
        "pyyntösi on monimutkainen", "din begäran är komplicerad", "your request is complex"
    ),
    ExtensionReason.NUMBER_OF_REQUESTS: _Text(
        "olemme saaneet sinulta useita pyyntöjä",
        "vi har fått flera begäranden från dig",
        "we have received several requests from you",
    ),
    ExtensionReason.VOLUME_OF_DATA: _Text(
        "tietoja on paljon, ja tallenteet ja viestit on käytävä läpi yksitellen",
        "uppgifterna är omfattande och inspelningarna och meddelandena måste gås igenom en och en",
        "there is a large amount of data, and the recordings and messages must be reviewed one by one",
    ),
    ExtensionReason.OTHERS_DATA: _Text(
        "tallenteissa on muita henkilöitä koskevia tietoja, jotka on poistettava ennen luovuttamista",
        "inspelningarna innehåller uppgifter om andra personer som måste tas bort innan de lämnas ut",
        "the recordings contain data about other people that must be removed before they are disclosed",
    ),
    ExtensionReason.SEVERAL_REGISTERS: _Text(
        "pyyntösi koskee useita rekistereitä",
        "din begäran gäller flera register",
        "your request concerns several registers",
    ),
}

_LIFT_REASONS: Mapping[LiftReason, _Text] = {
    LiftReason.ACCURACY_VERIFIED: _Text(
        "tietojen paikkansapitävyys on tarkistettu",
        "uppgifternas riktighet har kontrollerats",
        "the accuracy of the data has been verified",
    ),
    LiftReason.LEGAL_CLAIMS_CONCLUDED: _Text(
        "tietoja ei enää tarvita oikeudellisen vaateen laatimiseen, esittämiseen tai puolustamiseen",
        "uppgifterna behövs inte längre för att fastställa, göra gällande eller försvara rättsliga anspråk",
        "the data are no longer needed for the establishment, exercise or defence of legal claims",
    ),
    LiftReason.OBJECTION_DECIDED: _Text(
        "on tarkistettu, että rekisterinpitäjän oikeutetut perusteet ovat sinun perusteitasi painavammat",
        "det har kontrollerats att den personuppgiftsansvariges berättigade skäl väger tyngre än dina",
        "it has been verified that the controller's legitimate grounds override yours",
    ),
}

_SALUTATION = _Text("Hyvä rekisteröity,", "Bästa registrerade,", "Dear data subject,")
_CLOSING = _Text("Ystävällisin terveisin", "Med vänliga hälsningar", "Yours sincerely")
_CASE_NUMBER_LABEL = _Text("Asianumero", "Ärendenummer", "Case number")
_DATED = _Text("Päivämäärä", "Datum", "Date")
_RECEIVED = _Text("Pyyntö vastaanotettu", "Begäran mottagen", "Request received")
_LAST_DAY = _Text("Vastauksen määräpäivä", "Sista dag för svaret", "Last day for the reply")

_POSTAL = _Text("Postiosoite", "Postadress", "Postal address")
_VISITING = _Text("Käyntiosoite", "Besöksadress", "Visiting address")
_PHONE = _Text("Puhelin", "Telefon", "Phone")
_EMAIL = _Text("Sähköposti", "E-post", "E-mail")
_WEBSITE = _Text("Verkkosivut", "Webbplats", "Website")
_BUSINESS_ID = _Text("Y-tunnus", "FO-nummer", "Business ID")

# "under Art. 12(3)": Finnish needs the genitive of the article reference here, not the nominative.
_EXTENSION_ARTICLE = _Text(
    "tietosuoja-asetuksen 12 artiklan 3 kohdan", "artikel 12.3 i dataskyddsförordningen", "GDPR Art. 12(3)"
)

_ENGLISH_QUOTED = _Text(
    "Rekisterikohtaiset kuvaukset (kuten käsittelyn tarkoitukset, henkilötietoryhmät, tietolähteet ja "
    "perusteet) ovat englanniksi siinä muodossa kuin ne on kirjattu rekisterin tietosuojaselosteesta. "
    "Alkuperäisen tietosuojaselosteen saat rekisterinpitäjältä.",
    "Registerspecifika beskrivningar (såsom ändamål, kategorier av personuppgifter, källor och grunder) "
    "anges på engelska så som de har antecknats utifrån registrets dataskyddsbeskrivning. Den ursprungliga "
    "dataskyddsbeskrivningen får du av den personuppgiftsansvarige.",
    "",
)


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


def _header(lang: Language, subject: _Text, context: LetterContext) -> list[str]:
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
    lines = [f"{_Text('Rekisterinpitäjä', 'Personuppgiftsansvarig', 'Controller')(lang)}: {title}"]
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
    dpo_label = _Text("Tietosuojavastaava", "Dataskyddsombud", "Data protection officer")(lang)
    if dpo is not None and (dpo.email or dpo.phone):
        lines.append(f"{dpo_label}: {_contact_details(lang, dpo)}")
    else:
        lines.append(
            _Text(
                "{label}: tietosuojaselosteessa ei ole tietosuojavastaavan yhteystietoja; ota yhteyttä "
                "rekisterinpitäjään.",
                "{label}: dataskyddsbeskrivningen anger inga kontaktuppgifter till dataskyddsombudet; kontakta "
                "den personuppgiftsansvarige.",
                "{label}: the privacy notice gives no contact details of the data protection officer; contact "
                "the controller.",
            )(lang, label=dpo_label)
        )
        contact = controller.contact_person
        if contact is not None and (contact.email or contact.phone):
            role = f"{contact.role}, " if contact.role else ""
            contact_label = _Text("Yhteyshenkilö", "Kontaktperson", "Contact person")(lang)
            lines.append(f"{contact_label}: {role}{_contact_details(lang, contact)}")
    return lines


def _notice_line(lang: Language, version: PolicyVersion) -> str:
    notice = version.notice
    updated = (
        _date(notice.updated, lang)
        if notice.updated is not None
        else _Text("päiväämätön", "odaterad", "undated")(lang)
    )
    return _Text(
        "Tietosuojaseloste: ”{title}” ({updated}); sovelletaan {start} alkaen tehtyihin yhteydenottoihin.",
        "Dataskyddsbeskrivning: ”{title}” ({updated}); tillämpas på kontakter från och med {start}.",
        "Privacy notice: “{title}” ({updated}); applies to contacts from {start}.",
    )(lang, title=notice.title, updated=updated, start=_date(version.effective_from, lang))


def _bullets(items: Iterable[str], indent: str = "") -> list[str]:
    return [f"{indent}- {item}" for item in items]


def _classes_text(lang: Language, classes: Iterable[ArtifactClass]) -> str:
    return ", ".join(_CLASSES[c](lang) for c in classes)


def _legal_basis_block(lang: Language, version: PolicyVersion) -> list[str]:
    lines = [
        _Text("Käsittelyn oikeusperuste", "Rättslig grund för behandlingen", "Legal basis of the processing")(
            lang
        )
        + ":"
    ]
    for ground in version.legal_basis:
        line = f"{_LEGAL_BASES[ground.ground](lang)} ({ground.article})"
        if ground.law is not None:
            line += f"; {_Text('laki', 'lag', 'law')(lang)}: {ground.law}"
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
    label = _Text("Henkilötietoryhmät", "Kategorier av personuppgifter", "Categories of personal data")(lang)
    return [f"{label}:", *_bullets(f"{c.name}: {', '.join(c.items)}" for c in categories)]


def _recipient_line(lang: Language, recipient: Recipient) -> str:
    kind = _RECIPIENT_KINDS[recipient.kind](lang)
    # "Research institute (research institute)" says nothing twice over.
    name = recipient.name if recipient.name.casefold() == kind.casefold() else f"{recipient.name} ({kind})"
    line = f"{name}: {recipient.purpose}"
    if recipient.condition is not None:
        line += f" {_Text('Ehto', 'Villkor', 'Condition')(lang)}: {recipient.condition}"
    if recipient.artifact_classes:
        line += f" ({_Text('koskee', 'gäller', 'concerns')(lang)}: {_classes_text(lang, recipient.artifact_classes)})"
    if recipient.temporary_loan:
        line += " " + (
            _Text(
                "Tilapäinen luovutus; vastaanottaja sitoutuu palauttamaan tai hävittämään tiedot.",
                "Tillfälligt utlämnande; mottagaren förbinder sig att återlämna eller förstöra uppgifterna.",
                "A temporary loan; the recipient commits to returning or destroying the data.",
            )
            if recipient.return_or_destroy
            else _Text("Tilapäinen luovutus.", "Tillfälligt utlämnande.", "A temporary loan.")
        )(lang)
    return line


def _recipients_block(lang: Language, version: PolicyVersion) -> list[str]:
    label = _Text("Vastaanottajat", "Mottagare", "Recipients")(lang)
    if not version.recipients:
        none = _Text(
            "tietosuojaseloste ei nimeä tietojen vastaanottajia.",
            "dataskyddsbeskrivningen anger inga mottagare.",
            "the privacy notice names no recipients.",
        )(lang)
        return [f"{label}: {none}"]
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
    label = _Text(
        "Siirrot EU:n ja ETA:n ulkopuolelle",
        "Överföringar till länder utanför EU och EES",
        "Transfers outside the EU/EEA",
    )(lang)
    transfers = version.transfers_outside_eea
    if not transfers.allowed:
        text = _Text(
            "tietoja ei siirretä EU:n tai ETA:n ulkopuolelle.",
            "uppgifterna överförs inte till länder utanför EU eller EES.",
            "the data are not transferred outside the EU/EEA.",
        )(lang)
        lines = [f"{label}: {text}"]
    else:
        text = _Text(
            "tietoja voidaan siirtää EU:n tai ETA:n ulkopuolelle.",
            "uppgifterna kan överföras till länder utanför EU eller EES.",
            "the data may be transferred outside the EU/EEA.",
        )(lang)
        lines = [f"{label}: {text}"]
        if transfers.purpose is not None:
            lines.append(f"  {_Text('Tarkoitus', 'Ändamål', 'Purpose')(lang)}: {transfers.purpose}")
        if transfers.processor is not None:
            lines.append(
                f"  {_RECIPIENT_KINDS[RecipientKind.PROCESSOR](lang).capitalize()}: {transfers.processor}"
            )
        safeguards = [_SAFEGUARDS[s](lang) for s in transfers.safeguards]
        lines.append(
            f"  {_Text('Suojatoimet', 'Skyddsåtgärder', 'Safeguards')(lang)}: {_join(safeguards, lang)}"
        )
        if transfers.storage_location is not None:
            lines.append(
                f"  {_Text('Tallennuspaikka', 'Lagringsplats', 'Storage location')(lang)}: {transfers.storage_location}"
            )
    if transfers.note is not None:
        lines.append(f"  {transfers.note}")
    return lines


def _automated_block(lang: Language, version: PolicyVersion) -> list[str]:
    label = _Text(
        "Automaattinen päätöksenteko ja profilointi",
        "Automatiserat beslutsfattande och profilering",
        "Automated decision-making and profiling",
    )(lang)
    decisions = version.automated_decisions
    adm = (
        _Text(
            "Tietoja käytetään automaattiseen päätöksentekoon.",
            "Uppgifterna används för automatiserat beslutsfattande.",
            "The data are used for automated decision-making.",
        )
        if decisions.automated_decision_making
        else _Text(
            "Tietoihin ei kohdisteta automaattista päätöksentekoa.",
            "Uppgifterna används inte för automatiserat beslutsfattande.",
            "The data are not used for automated decision-making.",
        )
    )(lang)
    profiling = (
        _Text(
            "Tietoja käytetään profilointiin.",
            "Uppgifterna används för profilering.",
            "The data are used for profiling.",
        )
        if decisions.profiling
        else _Text(
            "Tietoja ei käytetä profilointiin.",
            "Uppgifterna används inte för profilering.",
            "The data are not used for profiling.",
        )
    )(lang)
    line = f"{label}: {adm} {profiling}"
    if decisions.automated_decision_making or decisions.profiling:
        # Art. 15(1)(h) asks for the logic involved, which the policy does not record.
        line += " " + _Text(
            "Tietoja käytetystä logiikasta ja sen merkityksestä sinulle saat rekisterinpitäjältä.",
            "Information om logiken och dess betydelse för dig får du av den personuppgiftsansvarige.",
            "The controller will tell you about the logic involved and its significance for you.",
        )(lang)
    return [line]


def _right_line(lang: Language, version: PolicyVersion, right: RightName) -> str:
    granted = version.rights.of(right)
    line = f"{_RIGHTS[right](lang)} ({_article(lang, _RIGHT_ARTICLES[right])}): {_STATUSES[granted.status](lang)}."
    if granted.status is not RightStatus.GRANTED and granted.ground is not None:
        line += f" {_STATUS_GROUND_LABEL[granted.status](lang)}: {granted.ground}"
    return line


def _rights_block(lang: Language, version: PolicyVersion) -> list[str]:
    lines = [_Text("Oikeutesi", "Dina rättigheter", "Your rights")(lang) + ":"]
    lines += _bullets(_right_line(lang, version, right) for right in _RIGHT_ARTICLES)
    if version.rights.submit_to is not None:
        label = _Text("Pyynnöt osoitetaan", "Begäranden lämnas till", "Requests go to")(lang)
        lines.append(f"{label}: {version.rights.submit_to}")
    return lines


def _version_block(
    lang: Language, version: PolicyVersion, held: frozenset[ArtifactClass] | None
) -> list[str]:
    lines = [_notice_line(lang, version)]
    lines += _controller_block(lang, version.controller)
    lines += [
        _Text("Käsittelyn tarkoitukset", "Ändamålen med behandlingen", "Purposes of the processing")(lang)
        + ":"
    ]
    lines += _bullets(version.purposes)
    lines += _legal_basis_block(lang, version)
    lines += _categories_block(lang, version, held)
    lines += _recipients_block(lang, version)
    lines += [_Text("Säilytysajat", "Lagringstider", "Retention periods")(lang) + ":"]
    lines += _retention_lines(lang, version, held)
    lines += [_Text("Tietolähteet", "Källor", "Sources of the data")(lang) + ":"]
    lines += _bullets(version.sources)
    lines += _transfers_block(lang, version)
    lines += _automated_block(lang, version)
    lines += _rights_block(lang, version)
    return lines


def _loans_block(lang: Language, findings: RegisterFindings) -> list[str]:
    lends = any(r.temporary_loan for v in findings.versions for r in v.recipients)
    if not findings.loans and not lends:
        return []
    label = _Text(
        "Tutkimuslainat, joihin tietojasi on sisältynyt",
        "Forskningslån som har omfattat dina uppgifter",
        "Research loans that included your data",
    )(lang)
    if not findings.loans:
        none = _Text(
            "tietojasi ei ole luovutettu tutkimuslaitokselle.",
            "dina uppgifter har inte lämnats ut till något forskningsinstitut.",
            "your data have not been lent to a research institute.",
        )(lang)
        return [f"{label}: {none}"]
    lines = [f"{label}:"]
    for loan in findings.loans:
        lines += _bullets(
            [
                _Text(
                    "{institute}, sopimus {reference}: {classes}; laina-aika {start}{dash}{end}; {status}.",
                    "{institute}, avtal {reference}: {classes}; låneperiod {start}{dash}{end}; {status}.",
                    "{institute}, agreement {reference}: {classes}; loan period {start} to {end}; {status}.",
                )(
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


# A notice gives the authority's own name in the notice's language only; Finland's supervisory authority is
# named here in all three so each part of a letter calls it by its name in that language.
_AUTHORITY_NAMES: Mapping[str, _Text] = {
    "Office of the Data Protection Ombudsman": _Text(
        "Tietosuojavaltuutetun toimisto", "Dataombudsmannens byrå", "Office of the Data Protection Ombudsman"
    ),
}


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
    heading = _Text(
        "Oikeus tehdä valitus valvontaviranomaiselle",
        "Rätt att lämna klagomål till tillsynsmyndigheten",
        "Right to lodge a complaint with the supervisory authority",
    )(lang)
    text = _Text(
        "Jos katsot, että henkilötietojesi käsittelyssä rikotaan tietosuojasääntelyä, sinulla on oikeus tehdä "
        "valitus valvontaviranomaiselle ({art}).",
        "Om du anser att behandlingen av dina personuppgifter strider mot dataskyddsbestämmelserna har du rätt "
        "att lämna klagomål till tillsynsmyndigheten ({art}).",
        "If you consider that the processing of your personal data infringes data protection law, you have the "
        "right to lodge a complaint with the supervisory authority ({art}).",
    )(lang, art=_article(lang, 77))
    return ["", heading, "", text, *_authority_lines(lang, versions)]


def _judicial_remedy_block(lang: Language) -> list[str]:
    heading = _Text(
        "Oikeus oikeussuojakeinoon tuomioistuimessa",
        "Rätt till rättsmedel vid domstol",
        "Right to a judicial remedy",
    )(lang)
    text = _Text(
        "Sinulla on lisäksi oikeus tehokkaaseen oikeussuojakeinoon tuomioistuimessa, jos katsot, että "
        "oikeuksiasi on loukattu henkilötietojesi käsittelyssä ({art}). Oikeus on voimassa valitusoikeudesta "
        "riippumatta.",
        "Du har också rätt till ett effektivt rättsmedel vid domstol om du anser att dina rättigheter har "
        "kränkts genom behandlingen av dina personuppgifter ({art}). Rätten gäller oberoende av rätten att "
        "lämna klagomål.",
        "You also have the right to an effective judicial remedy before a court if you consider that your rights "
        "have been infringed by the processing of your personal data ({art}). This is without prejudice to "
        "your right to lodge a complaint.",
    )(lang, art=_article(lang, 79))
    return ["", heading, "", text]


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
    subject = _Text(
        "Vastaus pyyntöösi saada pääsy henkilötietoihisi",
        "Svar på din begäran om tillgång till dina personuppgifter",
        "Reply to your request for access to your personal data",
    )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, subject, context)
        lines.append(
            _Text(
                "{asked} ({art}). Käsittelemme sinua koskevia henkilötietoja alla luetelluissa rekistereissä. "
                "Jäljennös tiedoistasi toimitetaan sinulle tämän kirjeen yhteydessä ({art3}).",
                "{asked} ({art}). Vi behandlar personuppgifter om dig i de register som anges nedan. En kopia av "
                "uppgifterna lämnas till dig tillsammans med detta brev ({art3}).",
                "{asked} ({art}). We process personal data about you in the registers listed below. A copy of "
                "the data is delivered to you with this letter ({art3}).",
            )(
                lang,
                asked=_ASKED[RightName.ACCESS](lang),
                art=_article(lang, 15),
                art3=_article(lang, 15, 3),
            )
        )
        lines += ["", _Text("Jäljennöksen sisältö", "Kopians innehåll", "Contents of the copy")(lang) + ":"]
        lines += _bullets(
            [
                f"{_Text('Yhteydenotot', 'Kontakter', 'Contacts')(lang)}: {package.contacts}",
                f"{_Text('Tallenteet', 'Inspelningar', 'Recordings')(lang)}: {package.recordings}",
                f"{_Text('Viestit', 'Meddelanden', 'Messages')(lang)}: {package.messages}",
                f"{_Text('Litteroinnit', 'Transkriptioner', 'Transcripts')(lang)}: {package.transcripts}",
            ]
        )
        if lang is not Language.EN:
            lines += ["", _ENGLISH_QUOTED(lang)]
        for number, findings in enumerate(registers, start=1):
            lines += ["", f"{number}. {_register_title(findings.latest)}"]
            several = len(findings.versions) > 1
            if several:
                lines.append(
                    _Text(
                        "Yhteydenottoihisi sovelletaan {count} tietosuojaselosteen versiota; kunkin tiedot alla.",
                        "På dina kontakter tillämpas {count} versioner av dataskyddsbeskrivningen; var och en "
                        "nedan.",
                        "{count} versions of the privacy notice apply to your contacts; each is given below.",
                    )(lang, count=len(findings.versions))
                )
            for index, version in enumerate(findings.versions, start=1):
                if several:
                    lines += ["", f"{number}.{index}."]
                lines += _version_block(lang, version, findings.held_classes)
            loans = _loans_block(lang, findings)
            if loans:
                lines += ["", *loans]
        if searched_without_data:
            lines += [
                "",
                _Text(
                    "Olemme tarkistaneet myös seuraavat rekisterit. Niissä ei ole sinua koskevia henkilötietoja:",
                    "Vi har också gått igenom följande register. De innehåller inga personuppgifter om dig:",
                    "We have also searched the following registers. They hold no personal data about you:",
                )(lang),
            ]
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
    subject = _Text(
        "Vastaus pyyntöösi: sinusta ei ole tietoja",
        "Svar på din begäran: det finns inga uppgifter om dig",
        "Reply to your request: we hold no data about you",
    )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, subject, context)
        lines.append(
            _Text(
                "{asked} ({art}). Olemme tarkistaneet alla luetellut rekisterit. Niissä ei ole sinua koskevia "
                "henkilötietoja.",
                "{asked} ({art}). Vi har gått igenom de register som anges nedan. De innehåller inga "
                "personuppgifter om dig.",
                "{asked} ({art}). We have searched the registers listed below. They hold no personal data about "
                "you.",
            )(lang, asked=_ASKED[request](lang), art=_article(lang, _RIGHT_ARTICLES[request]))
        )
        lines += [""]
        lines += _bullets(f"{v.register_name} ({v.controller.name})" for v in searched)
        lines += [
            "",
            _Text(
                "Tiedot poistetaan rekistereistä säilytysajan päätyttyä, joten aiemmista yhteydenotoistasi ei "
                "välttämättä ole enää tietoja.",
                "Uppgifterna raderas ur registren när lagringstiden har gått ut, så det kan hända att det inte "
                "längre finns uppgifter om dina tidigare kontakter.",
                "Data are deleted from the registers when their retention period ends, so there may no longer be "
                "any data about your earlier contacts.",
            )(lang),
        ]
        lines += _complaint_block(lang, searched)
        lines += _signature(lang, searched)
        parts[lang] = lines
    return _document(parts)


_FIELD_NAMES: Mapping[str, _Text] = {
    "phone": _Text("puhelinnumero", "telefonnummer", "phone number"),
    "email": _Text("sähköpostiosoite", "e-postadress", "e-mail address"),
    "name": _Text("nimi", "namn", "name"),
    "nickname": _Text("nimimerkki", "signatur", "nickname"),
    "personal_identity_code": _Text("henkilötunnus", "personbeteckning", "personal identity code"),
}


def _rectified_lines(lang: Language, rectified: Rectified) -> list[str]:
    lines = [""]
    if rectified.fields:
        lines.append(
            _Text(
                "Olemme oikaisseet seuraavat tiedot yhteydenotoissasi: {fields}. Aiempi tieto säilytetään "
                "salattuna oikaisuhistoriassa, kunnes sen oma säilytysaika päättyy.",
                "Vi har rättat följande uppgifter i dina kontakter: {fields}. Den tidigare uppgiften bevaras "
                "krypterad i rättelsehistoriken tills dess egen lagringstid går ut.",
                "We have rectified the following data in your contacts: {fields}. The earlier value is kept "
                "encrypted in the rectification history until its own retention period ends.",
            )(lang, fields=_join([_FIELD_NAMES[f](lang) for f in rectified.fields], lang))
        )
    if rectified.statement:
        lines.append(
            _Text(
                "Tallenteisiin ja keskusteluihin on liitetty lisäselvityksesi ({art}). Itse tallenteita ja "
                "viestejä ei muuteta.",
                "Ditt kompletterande utlåtande har fogats till inspelningarna och samtalen ({art}). "
                "Inspelningarna och meddelandena själva ändras inte.",
                "Your supplementary statement has been added to the recordings and conversations ({art}). The "
                "recordings and messages themselves are not altered.",
            )(lang, art=_article(lang, 16))
        )
    lines.append(
        _Text(
            "Ilmoitamme oikaisusta jokaiselle vastaanottajalle, jolle tietoja on luovutettu ({art}).",
            "Vi meddelar rättelsen till varje mottagare som uppgifterna har lämnats ut till ({art}).",
            "We notify the rectification to every recipient to whom the data have been disclosed ({art}).",
        )(lang, art=_article(lang, 19))
    )
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
    subject = _Text("Päätös pyyntöösi", "Beslut om din begäran", "Decision on your request")
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, subject, context)
        lines.append(
            _Text(
                "{asked} ({art}). Päätös rekistereittäin:",
                "{asked} ({art}). Beslut per register:",
                "{asked} ({art}). The decision per register:",
            )(lang, asked=_ASKED[request](lang), art=_article(lang, _RIGHT_ARTICLES[request]))
        )
        if quotes_policy and lang is not Language.EN:
            lines += [
                "",
                _Text(
                    "Rekisterin tietosuojaselosteeseen perustuvat perusteet on lainattu englanniksi siinä "
                    "muodossa kuin ne on kirjattu.",
                    "Grunder som bygger på registrets dataskyddsbeskrivning citeras på engelska så som de har "
                    "antecknats.",
                    "",
                )(lang),
            ]
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


# What a granted erasure or objection does, so the requester knows the data go and copies are followed up.
_ERASED: Mapping[RightName, _Text] = {
    RightName.ERASURE: _Text(
        "Sinua koskevat tiedot poistetaan rekisteristä viipymättä, ja poistosta ilmoitetaan niille, joille "
        "tietoja on luovutettu ({art}).",
        "Uppgifterna om dig raderas ur registret utan dröjsmål, och raderingen meddelas dem som uppgifterna har "
        "lämnats ut till ({art}).",
        "The data about you are erased from the register without delay, and those to whom the data have been "
        "disclosed are told of the erasure ({art}).",
    ),
    RightName.OBJECTION: _Text(
        "Sinua koskevien tietojen käsittely lopetetaan ja tiedot poistetaan rekisteristä viipymättä; poistosta "
        "ilmoitetaan niille, joille tietoja on luovutettu ({art}).",
        "Behandlingen av uppgifterna om dig upphör och uppgifterna raderas ur registret utan dröjsmål; raderingen "
        "meddelas dem som uppgifterna har lämnats ut till ({art}).",
        "Processing of the data about you stops and the data are erased from the register without delay; those "
        "to whom the data have been disclosed are told of the erasure ({art}).",
    ),
}


def _decision_lines(lang: Language, request: RightName, decision: RegisterDecision) -> list[str]:
    outcome = _OUTCOMES[decision.outcome](lang)
    line = f"{_Text('Päätös', 'Beslut', 'Decision')(lang)}: {outcome}"
    if decision.classes:
        line += f" ({_Text('koskee', 'gäller', 'concerns')(lang)}: {_classes_text(lang, decision.classes)})"
    lines = [line + "."]
    if decision.outcome is Outcome.GRANTED and request in _ERASED:
        lines.append(_ERASED[request](lang, art=_article(lang, 19)))
    if decision.outcome is not Outcome.REFUSED:
        return lines
    policy_ground = _policy_ground(decision.version, request)
    if policy_ground is not None:
        lead = _Text(
            "Peruste tietosuojaselosteen mukaan (englanniksi)",
            "Grund enligt dataskyddsbeskrivningen (på engelska)",
            "Ground according to the privacy notice",
        )(lang)
        lines.append(f"{lead}: {policy_ground}")
    if decision.statutory_ground is not None:
        ground = _STATUTORY_GROUNDS[decision.statutory_ground](
            lang, art=_statutory_article(lang, decision.statutory_ground, request)
        )
        lines.append(f"{_Text('Peruste', 'Grund', 'Ground')(lang)}: {ground}")
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
    subject = _Text(
        "Pyyntösi käsittelyaikaa pidennetään",
        "Tiden för att besvara din begäran förlängs",
        "The time for answering your request is extended",
    )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, subject, context)
        lines.append(
            _Text(
                "{asked} ({art}). Vastausaika päättyisi {last_day}. Pidennämme sitä {art12} nojalla, joka "
                "sallii määräajan pidentämisen enintään kahdella kuukaudella. Vastaamme pyyntöösi viimeistään "
                "{new_last_day}.",
                "{asked} ({art}). Tidsfristen för svaret skulle gå ut {last_day}. Vi förlänger den med stöd av "
                "{art12}, som tillåter att tidsfristen förlängs med högst två månader. Vi svarar på din begäran "
                "senast {new_last_day}.",
                "{asked} ({art}). The time limit for our reply would end on {last_day}. We extend it under "
                "{art12}, which allows the time limit to be extended by up to two months. We will answer your "
                "request by {new_last_day} at the latest.",
            )(
                lang,
                asked=_ASKED[request](lang),
                art=_article(lang, _RIGHT_ARTICLES[request]),
                art12=_EXTENSION_ARTICLE(lang),
                last_day=_date(context.last_day, lang),
                new_last_day=_date(new_last_day, lang),
            )
        )
        lines += [
            "",
            _Text(
                "Pidennämme määräaikaa, koska:", "Vi förlänger tidsfristen eftersom:", "We extend it because:"
            )(lang),
        ]
        lines += _bullets(_EXTENSION_REASONS[r](lang) for r in reasons)
        lines += [
            "",
            _Text(
                "Pyyntösi koskee seuraavia rekistereitä:",
                "Din begäran gäller följande register:",
                "Your request concerns these registers:",
            )(lang),
        ]
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
    subject = _Text(
        "Ilmoitus käsittelyn rajoituksen poistamisesta",
        "Meddelande om att begränsningen av behandlingen hävs",
        "Notice that the restriction of processing will be lifted",
    )
    parts: dict[Language, list[str]] = {}
    for lang in LANGUAGES:
        lines = _header(lang, subject, context)
        lines.append(
            _Text(
                "{asked} ({art}). Tietojesi käsittelyä on rajoitettu {restricted_on} alkaen alla luetelluissa "
                "rekistereissä. Ilmoitamme sinulle ennen rajoituksen poistamista ({art3}), että rajoitus "
                "poistetaan {lifted_on}, koska {reason}.",
                "{asked} ({art}). Behandlingen av dina uppgifter har begränsats från och med {restricted_on} i "
                "de register som anges nedan. Vi meddelar dig innan begränsningen hävs ({art3}) att den hävs "
                "{lifted_on}, eftersom {reason}.",
                "{asked} ({art}). The processing of your data has been restricted since {restricted_on} in the "
                "registers listed below. We are informing you before the restriction is lifted ({art3}): it will "
                "be lifted on {lifted_on}, because {reason}.",
            )(
                lang,
                asked=_ASKED[RightName.RESTRICTION](lang),
                art=_article(lang, 18),
                art3=_article(lang, 18, 3),
                restricted_on=_date(restricted_on, lang),
                lifted_on=_date(lifted_on, lang),
                reason=_LIFT_REASONS[reason](lang),
            )
        )
        lines += [
            "",
            _Text(
                "Rajoituksen poistamisen jälkeen tietojasi käsitellään tietosuojaselosteen mukaisesti, ja ne "
                "poistetaan säilytysajan päätyttyä:",
                "När begränsningen har hävts behandlas dina uppgifter enligt dataskyddsbeskrivningen och raderas "
                "när lagringstiden har gått ut:",
                "Once the restriction is lifted, your data are processed as the privacy notice describes and "
                "deleted when their retention period ends:",
            )(lang),
        ]
        for version in registers:
            lines += ["", _register_title(version)]
            lines += _retention_lines(lang, version, None, indent="  ")
        lines += [
            "",
            _Text(
                "Jos haluat esittää asiasta näkemyksesi, ota yhteyttä rekisterinpitäjään ennen {lifted_on}:",
                "Om du vill yttra dig, kontakta den personuppgiftsansvarige före {lifted_on}:",
                "If you wish to comment, contact the controller before {lifted_on}:",
            )(lang, lifted_on=_date(lifted_on, lang)),
        ]
        seen: set[str] = set()
        for version in registers:
            if version.controller.name not in seen:
                seen.add(version.controller.name)
                lines += _controller_block(lang, version.controller)
        lines += _complaint_block(lang, registers)
        lines += _signature(lang, registers)
        parts[lang] = lines
    return _document(parts)
