"""Access packages (GDPR Art. 15(3)) built from contacts ingested over HTTP, on real PostgreSQL and a real broker.

The checks are the ones a caseworker makes before sending a copy: the letter and every contact are there and
readable, the recording plays and is the one uploaded, and what is stored is ciphertext only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import subprocess
import uuid
import wave
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import delete

from services.dsr.letters import LetterContext, PackageContents, RegisterFindings, cover_letter
from services.dsr.package import PackageInfo, build_access_package, open_package
from shared.platform.crypto import DecryptionError, ciphertext_size
from shared.recordstore.keystore import DataKey, KeyStore
from shared.security.auth import Role
from shared.storage.blobstore import BlobStore, create_blob_store
from tests.integration.conftest import new_id, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    module_env,
    post_events,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

HELSINKI = ZoneInfo("Europe/Helsinki")
# Ingest refuses events from the future, so the contacts are dated a few days back.
AT = (datetime.now(HELSINKI) - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
REGISTER = "prh-customer-service"
CASE = "DSR-2026-0042"


env = module_env("dsr-package-data", AT)


@pytest.fixture
async def blobs(env: Env) -> AsyncIterator[BlobStore]:
    store = create_blob_store(env.settings.resolved_blob_store_url)
    yield store
    await store.close()


def keystore_of(env: Env) -> KeyStore:
    """A key store of its own, as the dsr service has: nothing cached from ingest's uploads."""
    return KeyStore(kek=env.settings.kek_bytes, kek_id=env.settings.key_encryption_key_id)


def letter_for(env: Env) -> Callable[[PackageContents], str]:
    version = env.ingest_app.state.policies.version_at(REGISTER, AT)
    context = LetterContext(case_number=CASE, received_on=date.today(), dated=date.today())
    return partial(cover_letter, context, [RegisterFindings(versions=(version,))])


async def build(
    env: Env,
    blobs: BlobStore,
    contact_refs: Sequence[uuid.UUID],
    *,
    package_key: bytes,
    letter: Callable[[PackageContents], str] | None = None,
) -> PackageInfo:
    async with env.sessionmaker() as session, session.begin():
        return await build_access_package(
            session,
            keystore=keystore_of(env),
            blobs=blobs,
            contact_refs=contact_refs,
            cover_letter=letter or letter_for(env),
            package_key=package_key,
            blob_key=f"dsr/{CASE}/{uuid.uuid4()}.zip.enc",
            case_number=CASE,
        )


async def opened(blobs: BlobStore, info: PackageInfo, package_key: bytes) -> bytes:
    return b"".join(
        [piece async for piece in open_package(blobs=blobs, package_key=package_key, blob_key=info.blob_key)]
    )


async def stored_bytes(blobs: BlobStore, blob_key: str) -> bytes:
    return b"".join([piece async for piece in blobs.open_stream(blob_key)])


async def upload_recording(env: Env, contact_id: str, audio: bytes) -> None:
    put = await env.ingest.put(
        f"/v1/contacts/{contact_id}/recording",
        content=audio,
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201, put.text


async def a_call_with_recording(env: Env, at: datetime, audio: bytes) -> str:
    call_id = f"call-{new_id()}"
    await post_events(
        env,
        make_event("call.started", call_id, at, direction="inbound", caller_number="+358401234567"),
        make_event(
            "call.answered",
            call_id,
            at + timedelta(seconds=20),
            agent={"id": "agent-17", "name": "Aino Agentti"},
        ),
        make_event("call.ended", call_id, at + timedelta(minutes=4)),
    )
    await wait_until_stored(env, call_id, events=3)
    await upload_recording(env, call_id, audio)
    return call_id


async def test_the_package_holds_every_contact_decrypted_and_the_recording_as_uploaded(
    env: Env, blobs: BlobStore, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    audio = wav_bytes(1.5, marker=f"AUDIOCANARY{tag}".encode())
    chat_text = f"Miten rekisteröin toiminimen? CHATCANARY{tag}"
    call_id = await a_call_with_recording(env, AT, audio)
    chat_id = f"chat-{new_id()}"
    await post_events(
        env,
        make_event("chat.message", chat_id, AT + timedelta(hours=1), sender="customer", text=chat_text),
        make_event(
            "chat.message",
            chat_id,
            AT + timedelta(hours=1, minutes=2),
            sender="agent",
            text="Asiointipalvelussa.",
        ),
    )
    await wait_until_stored(env, chat_id, events=2)
    call_ref, chat_ref = contact_ref_of(env, REGISTER, call_id), contact_ref_of(env, REGISTER, chat_id)
    package_key = os.urandom(32)

    # The order of the refs does not matter: contacts are numbered by when they started.
    info = await build(env, blobs, [chat_ref, call_ref], package_key=package_key)

    recording_name = f"recordings/1-{REGISTER}.wav"
    messages_name = f"messages/2-{REGISTER}.txt"
    assert info.files == ["cover-letter.txt", "contacts.json", "contacts.csv", messages_name, recording_name]
    assert info.contents == PackageContents(contacts=2, recordings=1, messages=2, transcripts=0)
    plain = await opened(blobs, info, package_key)
    assert hashlib.sha256(plain).hexdigest() == info.sha256
    assert info.size == await blobs.size(info.blob_key) == ciphertext_size(len(plain))
    archive = zipfile.ZipFile(io.BytesIO(plain))
    assert archive.namelist() == info.files
    assert archive.testzip() is None
    if shutil.which("unzip"):  # the streamed layout must suit ordinary tools too, not only Python's reader
        (tmp_path / "package.zip").write_bytes(plain)
        subprocess.run(["unzip", "-tq", str(tmp_path / "package.zip")], check=True, capture_output=True)

    letter = archive.read("cover-letter.txt").decode("utf-8")
    assert CASE in letter
    for line in ("Contacts: 2", "Recordings: 1", "Messages: 2", "Transcripts: 0", "Yhteydenotot: 2"):
        assert line in letter

    contacts = orjson.loads(archive.read("contacts.json"))
    assert [(c["number"], c["register"], c["channel"]) for c in contacts] == [
        (1, REGISTER, "phone"),
        (2, REGISTER, "chat"),
    ]
    call, chat = contacts
    assert call["direction"] == "inbound"
    assert datetime.fromisoformat(call["started_at"]) == AT
    assert datetime.fromisoformat(call["ended_at"]) == AT + timedelta(minutes=4)
    assert [e["type"] for e in call["events"]] == ["call.started", "call.answered", "call.ended"]
    assert call["events"][0]["data"]["caller_number"] == "+358401234567"
    assert {"role": "customer", "details": {"phone": "+358401234567"}} in call["parties"]
    assert call["recording"]["file"] == recording_name
    assert call["recording"]["sha256"] == hashlib.sha256(audio).hexdigest()
    assert call["messages_file"] is None
    assert [e["data"]["text"] for e in chat["events"]] == [chat_text, "Asiointipalvelussa."]
    assert chat["messages_file"] == messages_name
    assert chat["recording"] is None

    rows = list(csv.DictReader(io.StringIO(archive.read("contacts.csv").decode("utf-8"))))
    assert [(r["number"], r["channel"], r["recording_file"], r["messages_file"]) for r in rows] == [
        ("1", "phone", recording_name, ""),
        ("2", "chat", "", messages_name),
    ]
    assert rows[0]["direction"] == "inbound"

    messages = archive.read(messages_name).decode("utf-8")
    assert chat_text in messages
    assert messages.index("customer:") < messages.index("agent:") < messages.index("Asiointipalvelussa.")

    wav = archive.read(recording_name)
    assert wav == audio
    with wave.open(io.BytesIO(wav)) as played, wave.open(io.BytesIO(audio)) as uploaded:
        assert played.getnframes() == uploaded.getnframes() == 12_000
        assert played.getframerate() == uploaded.getframerate()
        assert played.getnframes() / played.getframerate() == 1.5
    assert call["recording"]["duration_ms"] == 1500

    # Internal pseudonyms stay inside: neither names nor contents carry a contact_ref.
    for name in archive.namelist():
        content = archive.read(name)
        for ref in (call_ref, chat_ref):
            assert str(ref) not in name and ref.hex not in name
            assert str(ref).encode() not in content and ref.hex.encode() not in content

    raw = await stored_bytes(blobs, info.blob_key)
    assert f"AUDIOCANARY{tag}".encode() not in raw
    assert f"CHATCANARY{tag}".encode() not in raw
    assert b"PK\x03\x04" not in raw[:64] and b"RIFF" not in raw


async def test_the_package_opens_only_with_its_key_and_at_its_own_blob_key(
    env: Env, blobs: BlobStore
) -> None:
    package_key = os.urandom(32)
    info = await build(env, blobs, [], package_key=package_key, letter=lambda _: "Hei")
    with pytest.raises(DecryptionError):
        await opened(blobs, info, os.urandom(32))
    moved = f"dsr/{CASE}/{uuid.uuid4()}.zip.enc"
    await blobs.put_stream(moved, blobs.open_stream(info.blob_key))
    with pytest.raises(DecryptionError):
        await opened(
            blobs, PackageInfo(moved, info.size, info.sha256, info.contents, info.files), package_key
        )
    assert (
        zipfile.ZipFile(io.BytesIO(await opened(blobs, info, package_key))).read("cover-letter.txt") == b"Hei"
    )


async def test_a_recording_whose_key_was_destroyed_is_left_out_and_the_rest_stays(
    env: Env, blobs: BlobStore
) -> None:
    audio = wav_bytes(0.5)
    call_id = await a_call_with_recording(env, AT + timedelta(hours=2), audio)
    call_ref = contact_ref_of(env, REGISTER, call_id)
    async with env.sessionmaker() as session, session.begin():
        await session.execute(
            delete(DataKey).where(DataKey.contact_ref == call_ref, DataKey.artifact_class == "recording")
        )
    package_key = os.urandom(32)

    # A contact erased meanwhile (or never ours) is simply not there.
    info = await build(env, blobs, [call_ref, uuid.uuid4()], package_key=package_key)

    assert info.contents == PackageContents(contacts=1, recordings=0, messages=0, transcripts=0)
    assert info.files == ["cover-letter.txt", "contacts.json", "contacts.csv"]
    archive = zipfile.ZipFile(io.BytesIO(await opened(blobs, info, package_key)))
    (contact,) = orjson.loads(archive.read("contacts.json"))
    assert contact["recording"] is None
    assert [e["type"] for e in contact["events"]] == ["call.started", "call.answered", "call.ended"]
    assert contact["events"][0]["data"]["caller_number"] == "+358401234567"
    assert "Recordings: 0" in archive.read("cover-letter.txt").decode("utf-8")


async def test_a_package_of_no_contacts_still_carries_the_letter(env: Env, blobs: BlobStore) -> None:
    package_key = os.urandom(32)
    seen: list[PackageContents] = []

    def letter(contents: PackageContents) -> str:
        seen.append(contents)
        return "Rekistereissä ei ole sinua koskevia tietoja."

    info = await build(env, blobs, [], package_key=package_key, letter=letter)

    assert seen == [PackageContents(contacts=0, recordings=0, messages=0, transcripts=0)]
    assert info.contents == seen[0]
    archive = zipfile.ZipFile(io.BytesIO(await opened(blobs, info, package_key)))
    assert archive.namelist() == ["cover-letter.txt", "contacts.json", "contacts.csv"]
    assert archive.read("cover-letter.txt").decode("utf-8") == "Rekistereissä ei ole sinua koskevia tietoja."
    assert orjson.loads(archive.read("contacts.json")) == []
    assert archive.read("contacts.csv").decode("utf-8").splitlines() == [
        "number,register,channel,started_at,ended_at,direction,case_number,case_status,events,messages_file,"
        "recording_file"
    ]
