"""Rectification (GDPR Art. 16): what a caseworker's corrections may say, and carrying them out.

A corrected customer field (phone, e-mail, name, nickname, personal identity code) is checked and put in the
form the record store keeps it in here; the record store then rewrites it everywhere the contact recorded it
and keeps the earlier value (shared.recordstore.subjects). Recordings, transcripts and chat messages are what
was said; they are never edited. A rectification adds a supplementary statement beside them (Art. 16: "by
means of providing a supplementary statement"), append-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.events import CUSTOMER_FIELDS
from shared.contracts.identifiers import (
    IdentifierError,
    normalise_email,
    normalise_phone,
    validate_personal_identity_code,
)
from shared.platform.crypto import BlindIndex
from shared.platform.errors import ApiError
from shared.recordstore import subjects
from shared.recordstore.keystore import KeyStore

RECORDING_CLASS = "recording"


@dataclass(frozen=True)
class Correction:
    field: str
    value: str


@dataclass(frozen=True)
class Changes:
    """The caseworker's rectification: the fields to correct and/or a supplementary statement."""

    corrections: tuple[Correction, ...] = ()
    statement: str | None = None

    @property
    def empty(self) -> bool:
        return not self.corrections and self.statement is None


@dataclass
class Rectified:
    """What was changed: the fields corrected (in the order asked), the contacts touched, the statements."""

    fields: list[str] = field(default_factory=list)
    contact_refs: set[UUID] = field(default_factory=set)
    statements: int = 0


def _stored_form(field_name: str, value: str) -> str:
    """The value as the record store keeps it: identifiers in their canonical form (as intake validates them),
    a name or nickname as written, with its whitespace tidied."""
    if field_name == "phone":
        return normalise_phone(value)
    if field_name == "email":
        return normalise_email(value)
    if field_name == "personal_identity_code":
        return validate_personal_identity_code(value)
    tidy = " ".join(value.split())
    if not tidy:
        raise IdentifierError("empty value")
    return tidy


async def rectify(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    blind_index: BlindIndex,
    contact_refs: Sequence[UUID],
    corrections: Sequence[Correction],
    statement: str | None,
    case_number: str,
    now: datetime,
) -> Rectified:
    """Correct the fields and add the statement across the contacts; flushes, never commits. A field no contact
    records, a bad value, or a statement with nothing to stand beside is refused naming the field."""
    wanted: dict[str, str] = {}
    for index, correction in enumerate(corrections):
        where = f"rectification.corrections[{index}]"
        if correction.field not in CUSTOMER_FIELDS:
            raise ApiError.field(422, f"{where}.field", f"one of: {', '.join(CUSTOMER_FIELDS)}")
        if correction.field in wanted:
            raise ApiError.field(422, f"{where}.field", "the field is corrected twice")
        try:
            wanted[correction.field] = _stored_form(correction.field, correction.value)
        except IdentifierError as exc:
            raise ApiError.field(422, f"{where}.value", str(exc)) from None
    result = Rectified()
    if wanted:
        found = await subjects.rectify_fields(
            session,
            keystore=keystore,
            blind_index=blind_index,
            contact_refs=contact_refs,
            values=wanted,
            case_number=case_number,
            now=now,
        )
        for index, correction in enumerate(corrections):
            if correction.field not in found:
                raise ApiError.field(
                    422,
                    f"rectification.corrections[{index}].field",
                    "none of the confirmed contacts records this field",
                )
        result.fields = list(wanted)
        result.contact_refs = {ref for refs_ in found.values() for ref in refs_}
    if statement is not None:
        touched = await subjects.add_statement(
            session,
            keystore=keystore,
            contact_refs=contact_refs,
            statement=statement,
            case_number=case_number,
            now=now,
        )
        if not touched:
            raise ApiError.field(
                422,
                "rectification.statement",
                "none of the confirmed contacts has a recording, transcript or messages to add it to",
            )
        result.statements = len(touched)
        result.contact_refs |= touched
    return result
