"""The copy of a data subject's personal data handed over with the answer to an access request (GDPR Art. 15(3)).

`build_access_package` reads the contacts a caseworker has found to be the requester's, decrypts them and
writes one ZIP file, encrypted, to the blob store; `open_package` streams it back decrypted for delivery. The
ZIP holds, in this order:

- ``cover-letter.txt``: the letter (services.dsr.letters.cover_letter) with the counts of what the copy holds.
- ``contacts.json``: a list, one object per contact: its register, channel, times, direction, case, the people
  in it and every event with its decrypted data, plus the names of its message and recording files.
- ``contacts.csv``: one row per contact with the same clear metadata, for a spreadsheet.
- ``messages/<n>-<register>.txt``: the chat, chatbot, SMS and e-mail messages of contact n, oldest first.
- ``recordings/<n>-<register>.wav``: the call recording of contact n, byte for byte as uploaded.

The ZIP's comment names the case number. Contacts are numbered 1..N from the earliest. Nothing in the package
names a contact by its internal pseudonym (contact_ref) or an event by its id: those mean nothing to the
requester and would only link the copy back to our tables. Times are Helsinki local time with their UTC offset.

Parts of a contact whose data key is already destroyed (the retention period ended while the request was
being handled) are left out or, for an event whose class is gone, shown with ``"data": null``: the package
never fails because data was lawfully deleted. A recording is left out and not counted.

The package never exists in clear outside this process: the ZIP is produced piece by piece, encrypted as it
goes (shared.platform.crypto.encrypt_stream under `package_key`, bound to the blob key) and written with the blob
store's atomic `put_stream`, so a failure half-way leaves nothing under the key. Recordings stream through
without being held in memory; the decrypted text of the contacts is small and is held.

Reading the contacts is all this module does with the database: choosing them, checking the requester's
identity, the audit entry and delivering the package are the caller's business.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.dsr.letters import PackageContents
from shared.platform.clock import HELSINKI
from shared.platform.crypto import decrypt_stream, encrypt_stream
from shared.platform.logging import get_logger
from shared.recordstore import subjects
from shared.recordstore.keystore import KeyStore
from shared.recordstore.recordings import RecordingStream, read_recording
from shared.recordstore.store import rectifications_of
from shared.storage.blobstore import BlobStore, validate_key
from shared.storage.ziparchive import ZipEntry, zip_stream

__all__ = ["PACKAGE_AAD_PREFIX", "PackageInfo", "build_access_package", "open_package", "package_aad"]

log = get_logger(__name__)

PACKAGE_AAD_PREFIX = b"sailo-dsr-package:"

# The same shape LetterContext accepts, so the number in the ZIP comment is the one in the letter.
_CASE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._:-]{0,63}$")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CSV_COLUMNS = (
    "number",
    "register",
    "channel",
    "started_at",
    "ended_at",
    "direction",
    "case_number",
    "case_status",
    "events",
    "messages_file",
    "recording_file",
)


@dataclass(frozen=True, slots=True)
class PackageInfo:
    blob_key: str
    size: int
    """Bytes stored: the ciphertext, as the blob store holds it."""
    sha256: str
    """Hex SHA-256 of the plaintext ZIP, so a delivered copy can be checked against what was built."""
    contents: PackageContents
    files: list[str]
    """The names in the ZIP, in order."""


@dataclass(frozen=True, slots=True)
class _Message:
    sender: str
    sent_at: datetime
    text: str


@dataclass(slots=True)
class _ContactCopy:
    number: int
    contact: subjects.OpenedContact
    events: list[dict[str, Any]] = field(default_factory=list)
    parties: list[dict[str, Any]] = field(default_factory=list)
    messages: list[_Message] = field(default_factory=list)
    recording: RecordingStream | None = None
    rectifications: list[dict[str, Any]] = field(default_factory=list)
    """Corrections with their earlier values and supplementary statements (Art. 16): the requester's data too."""

    @property
    def messages_file(self) -> str | None:
        return f"messages/{self.number}-{self.contact.register}.txt" if self.messages else None

    @property
    def recording_file(self) -> str | None:
        return f"recordings/{self.number}-{self.contact.register}.wav" if self.recording else None


def package_aad(blob_key: str) -> bytes:
    """Associated data of a package's encryption: the ciphertext only opens under the key it was stored at."""
    return PACKAGE_AAD_PREFIX + blob_key.encode()


async def build_access_package(
    session: AsyncSession,
    *,
    keystore: KeyStore,
    blobs: BlobStore,
    contact_refs: Sequence[UUID],
    cover_letter: Callable[[PackageContents], str],
    package_key: bytes,
    blob_key: str,
    case_number: str,
) -> PackageInfo:
    """Build the access copy of `contact_refs`, encrypt it under `package_key` and store it at `blob_key`.

    Contacts that no longer exist are skipped; an empty list gives a package with the cover letter and empty
    contact lists. `cover_letter` gets the counts of what the package holds and returns the letter's text.
    Raises DecryptionError if stored data does not decrypt under a key that exists (tampering or corruption,
    never expiry), and what `read_recording` raises while a recording is copied; nothing is stored then.
    """
    validate_key(blob_key)
    if not _CASE_NUMBER.fullmatch(case_number):
        raise ValueError("case number must be a code of letters, digits and / . _ : -")
    copies = await _read_contacts(session, keystore=keystore, blobs=blobs, contact_refs=contact_refs)
    try:
        contents = PackageContents(
            contacts=len(copies),
            recordings=sum(1 for c in copies if c.recording is not None),
            messages=sum(len(c.messages) for c in copies),
            # The record store keeps no transcripts: recordings are not transcribed.
            transcripts=0,
        )
        entries = _entries(cover_letter(contents), copies)
        digest = hashlib.sha256()

        async def plaintext() -> AsyncIterator[bytes]:
            # ZIP times have no zone; the requester reads them as local time, like every other time in the
            # package.
            archive = zip_stream(
                entries, modified=datetime.now(HELSINKI), comment=f"Sailo access copy, case {case_number}"
            )
            async for piece in archive:
                digest.update(piece)
                yield piece

        size = await blobs.put_stream(
            blob_key, encrypt_stream(package_key, plaintext(), aad=package_aad(blob_key))
        )
    finally:
        for copy in copies:
            if copy.recording is not None:
                await copy.recording.aclose()
    log.info(
        "dsr.access_package_stored",
        blob_key=blob_key,
        size=size,
        contacts=contents.contacts,
        recordings=contents.recordings,
        messages=contents.messages,
    )
    return PackageInfo(
        blob_key=blob_key,
        size=size,
        sha256=digest.hexdigest(),
        contents=contents,
        files=[name for name, _ in entries],
    )


async def open_package(*, blobs: BlobStore, package_key: bytes, blob_key: str) -> AsyncIterator[bytes]:
    """The stored package's ZIP, decrypted while it streams.

    Raises DecryptionError for a wrong key or a blob that was altered, truncated or moved to another key, and
    BlobNotFound if nothing is stored there. As with any decrypted stream, the ZIP is only complete once
    iteration ends without an exception: do not deliver a copy before that.
    """
    source = blobs.open_stream(blob_key)
    plaintext = decrypt_stream(package_key, source, aad=package_aad(blob_key))
    try:
        async for piece in plaintext:
            yield piece
    finally:
        await _aclose(plaintext)
        await _aclose(source)


# ---------------------------------------------------------------------------------------------- reading


async def _read_contacts(
    session: AsyncSession, *, keystore: KeyStore, blobs: BlobStore, contact_refs: Sequence[UUID]
) -> list[_ContactCopy]:
    opened = await subjects.read_contacts(session, keystore=keystore, contact_refs=contact_refs)
    if not opened:
        return []
    copies = {c.contact_ref: _ContactCopy(number, c) for number, c in enumerate(opened, start=1)}
    for copy in copies.values():
        for event in copy.contact.events:
            copy.events.append(
                {
                    "type": event.type,
                    "occurred_at": event.occurred_at.astimezone(HELSINKI),
                    "data": event.data,
                }
            )
            if isinstance(event.data, dict):
                copy.messages.extend(_messages_of(event.type, event.occurred_at, event.data))
        copy.parties = [{"role": party.role, "details": party.details} for party in copy.contact.parties]
    for ref, history in (await rectifications_of(session, keystore, list(copies))).items():
        copies[ref].rectifications = [
            {**entry, "made_at": entry["made_at"].astimezone(HELSINKI)} for entry in history
        ]
    for copy in copies.values():
        copy.recording = await read_recording(
            session, keystore=keystore, blobs=blobs, contact_ref=copy.contact.contact_ref
        )
    return list(copies.values())


def _messages_of(event_type: str, at: datetime, data: dict[str, Any]) -> list[_Message]:
    """The messages an event carries, as the requester would recognise them.

    They come from the events rather than the messages table: SMS and e-mail exist only as events, and the
    sweeper's redaction of chatbot text rewrites the event as well as the message, so one source serves all.
    """
    if event_type in ("chat.message", "chatbot.message"):
        return [_Message(str(data["sender"]), at, str(data["text"]))]
    if event_type == "sms_survey.sent" and data.get("question"):
        return [_Message("service", at, str(data["question"]))]
    if event_type == "sms_survey.answered":
        return [_Message("customer", at, str(data["answer"]))]
    if event_type == "email.received":
        lines = []
        if data.get("subject"):
            lines.append(f"Subject: {data['subject']}")
        for attachment in data.get("attachments") or []:
            lines.append(
                f"Attachment: {attachment['filename']} ({attachment['content_type']}, "
                f"{attachment['size_bytes']} bytes; the file itself is not stored)"
            )
        if data.get("body"):
            lines += ["", str(data["body"])] if lines else [str(data["body"])]
        return [_Message("customer", at, "\n".join(lines))]
    return []


# ---------------------------------------------------------------------------------------------- writing


def _entries(letter: str, copies: list[_ContactCopy]) -> list[ZipEntry]:
    entries: list[ZipEntry] = [
        ("cover-letter.txt", letter.encode("utf-8")),
        ("contacts.json", _contacts_json(copies)),
        ("contacts.csv", _contacts_csv(copies)),
    ]
    for copy in copies:
        if copy.messages_file is not None:
            entries.append((copy.messages_file, _messages_text(copy)))
    for copy in copies:
        if copy.recording_file is not None and copy.recording is not None:
            entries.append((copy.recording_file, copy.recording))
    return entries


def _local(at: datetime | None) -> datetime | None:
    return at.astimezone(HELSINKI) if at is not None else None


def _contacts_json(copies: Iterable[_ContactCopy]) -> bytes:
    listed = []
    for copy in copies:
        c = copy.contact
        recording = copy.recording
        listed.append(
            {
                "number": copy.number,
                "register": c.register,
                "channel": c.channel,
                "started_at": _local(c.started_at),
                "ended_at": _local(c.ended_at),
                "direction": c.direction,
                "case_number": c.case_number,
                "case_status": c.case_status,
                "parties": copy.parties,
                "events": copy.events,
                "messages_file": copy.messages_file,
                "rectifications": copy.rectifications,
                "recording": None
                if recording is None
                else {
                    "file": copy.recording_file,
                    "content_type": recording.content_type,
                    "size_bytes": recording.size_bytes,
                    "duration_ms": recording.duration_ms,
                    "sha256": recording.sha256,
                },
            }
        )
    return orjson.dumps(listed, option=orjson.OPT_INDENT_2)


def _cell(value: object) -> str:
    text = "" if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _contacts_csv(copies: Iterable[_ContactCopy]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_COLUMNS)
    for copy in copies:
        c = copy.contact
        row = (
            copy.number,
            c.register,
            c.channel,
            _local(c.started_at),
            _local(c.ended_at),
            c.direction,
            c.case_number,
            c.case_status,
            len(copy.events),
            copy.messages_file,
            copy.recording_file,
        )
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def _messages_text(copy: _ContactCopy) -> bytes:
    c = copy.contact
    started = c.started_at.astimezone(HELSINKI).isoformat(sep=" ")
    lines = [f"Contact {copy.number}: {c.register}, {c.channel}, started {started}", ""]
    for message in copy.messages:
        lines += [f"[{message.sent_at.astimezone(HELSINKI).isoformat(sep=' ')}] {message.sender}:"]
        lines += [message.text, ""]
    for entry in copy.rectifications:
        if entry["kind"] == "statement":
            lines += [
                f"[{entry['made_at'].isoformat(sep=' ')}] supplementary statement ({entry['case_number']}):"
            ]
            lines += [entry["text"], ""]
    return "\n".join(lines).encode("utf-8")


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    # Both blob stores and decrypt_stream hand out async generators; closing one releases its file handle or
    # HTTP connection at once instead of at garbage collection.
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()
