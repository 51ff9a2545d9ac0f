"""A research loan's package on real PostgreSQL and a real broker, from recordings stored through ingest: built by a
research officer, downloaded by the institute once delivered, opened with the key it fetches apart, and every
recording checked against the manifest; and what is refused to whom."""

from __future__ import annotations

import base64
import io
import os
import uuid
import wave
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from sqlalchemy import select, update

from deploy.cli.loans import LoanFetchError, fetch_loan
from services.export.app import create_app as create_export
from services.export.models import Loan, LoanItem
from services.export.package import unpack_package
from shared.platform.crypto import DecryptionError
from shared.platform.settings import Settings
from shared.recordstore.models import Artifact, Contact
from shared.security.auth import Role
from shared.storage.blobstore import BlobStore, create_blob_store
from tests.conftest import Infrastructure
from tests.integration.conftest import new_id, wav_bytes
from tests.integration.retention_env import (
    Env,
    contact_ref_of,
    make_event,
    post_events,
    retention_env,
    wait_until_stored,
)

pytestmark = pytest.mark.integration

HELSINKI = ZoneInfo("Europe/Helsinki")
# Ingest refuses events from the future, so the calls are dated a few days back.
AT = (datetime.now(HELSINKI) - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
REGISTER = "prh-customer-service"
CALLER = "+358401234567"
INSTITUTE = "puhelab"


@dataclass
class Export:
    env: Env
    client: httpx.AsyncClient
    app: Any
    token_for: Any

    def headers(
        self, role: Role, *, institute: str | None = None, subject: str | None = None
    ) -> dict[str, str]:
        token = self.token_for(role, institute_id=institute, subject=subject)
        return {"Authorization": f"Bearer {token}"}

    @property
    def officer(self) -> dict[str, str]:
        return self.headers(Role.RESEARCH_OFFICER, subject="officer-anna")

    @property
    def institute(self) -> dict[str, str]:
        return self.headers(Role.INSTITUTE, institute=INSTITUTE)


@dataclass
class LentCall:
    contact_ref: uuid.UUID
    item_id: uuid.UUID
    audio: bytes


@pytest.fixture(scope="module")
async def export(
    infrastructure: Infrastructure,
    settings: Settings,
    token_for: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Export]:
    data_dir = tmp_path_factory.mktemp("export-package-data")
    async with retention_env(infrastructure, settings, token_for, data_dir, clock_at=AT) as env:
        app = create_export(env.settings, run_watch=False)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://export.test")
            )
            yield Export(env, client, app, token_for)


@pytest.fixture
async def blobs(export: Export) -> AsyncIterator[BlobStore]:
    store = create_blob_store(export.env.settings.resolved_blob_store_url)
    yield store
    await store.close()


async def a_recorded_call(env: Env, audio: bytes, at: datetime = AT) -> uuid.UUID:
    call_id = f"call-{new_id()}"
    await post_events(
        env,
        make_event("call.started", call_id, at, direction="inbound", caller_number=CALLER),
        make_event(
            "call.answered",
            call_id,
            at + timedelta(seconds=20),
            agent={"id": "agent-17", "name": "Aino Agentti"},
        ),
        make_event("call.ended", call_id, at + timedelta(minutes=4)),
    )
    await wait_until_stored(env, call_id, events=3)
    put = await env.ingest.put(
        f"/v1/contacts/{call_id}/recording",
        content=audio,
        headers={**env.headers[Role.PLATFORM], "Content-Type": "audio/wav"},
    )
    assert put.status_code == 201, put.text
    return contact_ref_of(env, REGISTER, call_id)


async def a_loan(
    export: Export, audios: list[bytes], *, institute: str = INSTITUTE, status: str = "approved"
) -> tuple[uuid.UUID, list[LentCall]]:
    """An approved loan to `institute` with one selected item per recording, each a call stored through ingest.
    The rows are written directly: selecting is another route's business."""
    env = export.env
    refs = [
        await a_recorded_call(env, audio, AT + timedelta(minutes=10 * n)) for n, audio in enumerate(audios)
    ]
    loan_id = uuid.uuid4()
    calls = [LentCall(ref, uuid.uuid4(), audio) for ref, audio in zip(refs, audios, strict=True)]
    async with env.sessionmaker() as session, session.begin():
        session.add(
            Loan(
                loan_id=loan_id,
                institute_id=institute,
                agreement_ref="PRH-TUT-2026/14",
                purpose="Assessing the quality of telephone customer service",
                study_ends_on=date(2027, 5, 31),
                institute_name="Puheentutkimuksen laboratorio",
                contact_person="Tutkimusjohtaja A. Tutkija",
                legal_basis="GDPR Art. 6(1)(e) and Art. 89",
                commitment="destroy",
                status=status,
                created_by=uuid.uuid4(),
                approved_by=uuid.uuid4() if status == "approved" else None,
            )
        )
        await session.flush()
        for call in calls:
            session.add(
                LoanItem(
                    item_id=call.item_id,
                    loan_id=loan_id,
                    contact_ref=call.contact_ref,
                    artifact_class="recording",
                    register=REGISTER,
                    status="selected",
                )
            )
    return loan_id, calls


async def deliver(env: Env, loan_id: uuid.UUID) -> None:
    """As the delivery route records it (another route's business): the loan delivered, its items lent."""
    async with env.sessionmaker() as session, session.begin():
        await session.execute(
            update(Loan)
            .where(Loan.loan_id == loan_id)
            .values(status="delivered", delivered_at=datetime.now(HELSINKI))
        )
        await session.execute(update(LoanItem).where(LoanItem.loan_id == loan_id).values(status="lent"))


async def loan_row(env: Env, loan_id: uuid.UUID) -> Loan:
    async with env.sessionmaker() as session:
        loan: Loan | None = await session.get(Loan, loan_id)
    assert loan is not None
    return loan


def loan_blob_files(export: Export, loan_id: uuid.UUID) -> list[Path]:
    root = Path(export.env.settings.resolved_blob_store_url.removeprefix("file://"))
    return [path for path in (root / "loans" / str(loan_id)).rglob("*") if path.is_file()]


def field_of(response: httpx.Response) -> str:
    field: str = response.json()["errors"][0]["field"]
    return field


def duration_ms(audio: bytes) -> int:
    with wave.open(io.BytesIO(audio)) as wav:
        milliseconds: int = wav.getnframes() * 1000 // wav.getframerate()
    return milliseconds


async def test_the_institute_opens_its_delivered_package_with_the_key_fetched_apart_and_every_recording_checks_out(
    export: Export, blobs: BlobStore, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    audios = [wav_bytes(1.0 + n / 2, marker=f"AUDIOCANARY{tag}{n}".encode()) for n in range(3)]
    loan_id, calls = await a_loan(export, audios)
    client = export.client

    built = await client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert built.status_code == 200, built.text
    summary = built.json()
    assert summary["items"] == 3
    loan = await loan_row(export.env, loan_id)
    assert (summary["package_sha256"], summary["package_bytes"]) == (loan.package_sha256, loan.package_bytes)
    assert loan.package_blob_key is not None and loan.package_blob_key.startswith(f"loans/{loan_id}/")
    stored = b"".join([piece async for piece in blobs.open_stream(loan.package_blob_key)])
    assert len(stored) == loan.package_bytes
    # Only ciphertext is stored: neither the audio nor the manifest shows through.
    assert f"AUDIOCANARY{tag}".encode() not in stored and b"RIFF" not in stored and b"manifest" not in stored
    assert loan.package_key is not None and len(loan.package_key) > 32  # wrapped, not the key itself

    # Before delivery the institute sees the manifest but gets neither the package nor its key.
    listed = await client.get(f"/v1/loans/{loan_id}/manifest", headers=export.institute)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3
    early = await client.get(f"/v1/loans/{loan_id}/package", headers=export.institute)
    assert early.status_code == 409 and field_of(early) == "status"
    early_key = await client.get(f"/v1/loans/{loan_id}/package-key", headers=export.institute)
    assert early_key.status_code == 409 and field_of(early_key) == "status"
    # The key goes to the institute only: not even a research officer fetches it.
    assert (await client.get(f"/v1/loans/{loan_id}/package-key", headers=export.officer)).status_code == 403

    await deliver(export.env, loan_id)

    # Another institute's request is answered as for a loan that does not exist.
    stranger = export.headers(Role.INSTITUTE, institute="toinen-lab")
    for suffix in ("package", "package-key", "manifest"):
        refused = await client.get(f"/v1/loans/{loan_id}/{suffix}", headers=stranger)
        assert refused.status_code == 404 and field_of(refused) == "loan_id", suffix
        missing = await client.get(f"/v1/loans/{uuid.uuid4()}/{suffix}", headers=export.institute)
        assert missing.status_code == 404 and refused.json() == missing.json()

    download = await client.get(f"/v1/loans/{loan_id}/package", headers=export.institute)
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/octet-stream"
    assert int(download.headers["content-length"]) == len(download.content) == loan.package_bytes
    assert download.headers["x-package-sha256"] == loan.package_sha256
    assert download.content == stored

    key_response = await client.get(f"/v1/loans/{loan_id}/package-key", headers=export.institute)
    assert key_response.status_code == 200, key_response.text
    assert key_response.headers["cache-control"] == "no-store"
    key_body = key_response.json()
    assert key_body["package_sha256"] == loan.package_sha256 and "AES-256-GCM" in key_body["algorithm"]
    key = base64.b64decode(key_body["key"])
    assert len(key) == 32
    released = (await loan_row(export.env, loan_id)).key_released_at
    assert released is not None
    # A second fetch is audited but the first release stays on record.
    assert (await client.get(f"/v1/loans/{loan_id}/package-key", headers=export.institute)).status_code == 200
    assert (await loan_row(export.env, loan_id)).key_released_at == released

    async def pieces(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    # A wrong key, or the right key on another loan, opens nothing and unpacks nothing.
    for wrong_key, wrong_loan in ((os.urandom(32), loan_id), (key, uuid.uuid4())):
        with pytest.raises(DecryptionError):
            await unpack_package(
                pieces(download.content), package_key=wrong_key, loan_id=wrong_loan, out_dir=tmp_path / "no"
            )
        assert not list((tmp_path / "no").rglob("*.wav")) and not list((tmp_path / "no").glob("manifest*"))

    out = tmp_path / "unpacked"
    report = await unpack_package(pieces(download.content), package_key=key, loan_id=loan_id, out_dir=out)
    assert report.ok, report.mismatches
    assert (report.items, report.verified, report.mismatches) == (3, 3, [])
    assert report.ciphertext_sha256 == loan.package_sha256
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "recordings"]

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    served = await client.get(f"/v1/loans/{loan_id}/manifest", headers=export.institute)
    assert served.status_code == 200 and served.json()["items"] == manifest["items"]
    for name in ("loan_id", "agreement_ref", "institute_id", "commitment", "study_ends_on"):
        assert served.json()[name] == manifest[name]
    assert set(manifest) == {
        "loan_id",
        "agreement_ref",
        "institute_id",
        "created_at",
        "commitment",
        "study_ends_on",
        "items",
    }
    assert (manifest["loan_id"], manifest["institute_id"], manifest["commitment"]) == (
        str(loan_id),
        INSTITUTE,
        "destroy",
    )
    by_item = {uuid.UUID(entry["item_id"]): entry for entry in manifest["items"]}
    assert set(by_item) == {call.item_id for call in calls}
    for call in calls:
        entry = by_item[call.item_id]
        assert set(entry) == {"item_id", "file", "duration_ms", "size_bytes", "sha256"}
        assert entry["file"] == f"recordings/{call.item_id}.wav"
        unpacked = (out / entry["file"]).read_bytes()
        assert unpacked == call.audio
        assert entry["size_bytes"] == len(call.audio)
        assert entry["duration_ms"] == duration_ms(unpacked) == duration_ms(call.audio)
        with wave.open(io.BytesIO(unpacked)) as wav:  # plays: a valid WAV
            assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
    # Nothing in the manifest names the customer or links back to the record store.
    text = (out / "manifest.json").read_text()
    for call in calls:
        assert str(call.contact_ref) not in text and call.contact_ref.hex not in text
    for personal in (CALLER, "Aino", "agent-17", REGISTER, "call-"):
        assert personal not in text

    # The items carry the manifest's checks.
    async with export.env.sessionmaker() as session:
        items = (await session.scalars(select(LoanItem).where(LoanItem.loan_id == loan_id))).all()
    for item in items:
        entry = by_item[item.item_id]
        assert (item.size_bytes, item.sha256, item.duration_ms) == (
            entry["size_bytes"],
            entry["sha256"],
            entry["duration_ms"],
        )

    # A research officer and an auditor read the manifest too.
    auditor = export.headers(Role.AUDITOR)
    for headers in (export.officer, auditor):
        assert (await client.get(f"/v1/loans/{loan_id}/manifest", headers=headers)).json()[
            "items"
        ] == served.json()["items"]

    # The package cannot change once delivered.
    again = await client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert again.status_code == 409 and field_of(again) == "status"


async def test_sailo_loan_fetch_downloads_unpacks_and_verifies_with_a_progress_bar(
    export: Export, tmp_path: Path
) -> None:
    audios = [wav_bytes(2.0, marker=f"FETCH{n}".encode()) for n in range(2)]
    loan_id, calls = await a_loan(export, audios)
    assert (
        await export.client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    ).status_code == 200

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=export.app), base_url="http://export.test", headers=export.institute
    ) as institute:
        with pytest.raises(LoanFetchError, match=r"HTTP 409.*status"):
            await fetch_loan(institute, loan_id, tmp_path / "early")
        await deliver(export.env, loan_id)
        progress = io.StringIO()
        report = await fetch_loan(institute, loan_id, tmp_path / "loan", progress=progress)

    assert report.ok and (report.items, report.verified) == (2, 2), report.mismatches
    for call in calls:
        assert (tmp_path / "loan" / "recordings" / f"{call.item_id}.wav").read_bytes() == call.audio
    drawn = progress.getvalue()
    assert drawn.startswith("\r[") and drawn.endswith("100%\n")
    assert f"/ {report.ciphertext_bytes / 1_000_000:,.1f} MB" in drawn
    # Nothing but the unpacked files is left behind.
    assert sorted(p.name for p in (tmp_path / "loan").iterdir()) == ["manifest.json", "recordings"]


async def test_a_restricted_or_deleted_item_is_refused_until_selected_again_and_no_package_is_stored(
    export: Export, blobs: BlobStore
) -> None:
    audios = [wav_bytes(1.0, marker=f"RESTRICT{n}".encode()) for n in range(3)]
    loan_id, calls = await a_loan(export, audios)
    async with export.env.sessionmaker() as session, session.begin():
        await session.execute(
            update(Contact)
            .where(Contact.contact_ref == calls[0].contact_ref)
            .values(restricted_at=datetime.now(HELSINKI))
        )

    refused = await export.client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert refused.status_code == 409 and field_of(refused) == "items"
    assert "1 selected item" in refused.text
    for call in calls:
        assert str(call.contact_ref) not in refused.text and str(call.item_id) not in refused.text
    loan = await loan_row(export.env, loan_id)
    assert loan.package_blob_key is None and loan.manifest is None
    assert loan_blob_files(export, loan_id) == []

    # A research officer's recorded override of the exclusion lets the item go (the override's who and why are
    # the selection's business).
    async with export.env.sessionmaker() as session, session.begin():
        await session.execute(
            update(LoanItem)
            .where(LoanItem.item_id == calls[0].item_id)
            .values(overridden_exclusion="restricted")
        )
    first = await export.client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert first.status_code == 200, first.text
    first_blob = (await loan_row(export.env, loan_id)).package_blob_key
    assert first_blob is not None

    # A rebuild before delivery replaces the package and its key; the previous one is deleted.
    second = await export.client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert second.status_code == 200, second.text
    rebuilt = await loan_row(export.env, loan_id)
    assert rebuilt.package_blob_key != first_blob and rebuilt.package_sha256 != first.json()["package_sha256"]
    assert not await blobs.exists(first_blob) and rebuilt.package_blob_key is not None
    assert await blobs.exists(rebuilt.package_blob_key)

    # Recordings deleted since the selection (by retention, say) need a new selection too.
    async with export.env.sessionmaker() as session, session.begin():
        await session.execute(
            update(Artifact)
            .where(
                Artifact.contact_ref.in_([calls[1].contact_ref, calls[2].contact_ref]),
                Artifact.artifact_class == "recording",
            )
            .values(status="deleted")
        )
    gone = await export.client.post(f"/v1/loans/{loan_id}/package", headers=export.officer)
    assert gone.status_code == 409 and field_of(gone) == "items" and "2 selected item" in gone.text
    # The package built before stays in place.
    assert (await loan_row(export.env, loan_id)).package_blob_key == rebuilt.package_blob_key
    assert await blobs.exists(rebuilt.package_blob_key)


async def test_only_an_approved_loan_with_selected_items_is_packaged(export: Export) -> None:
    draft, _ = await a_loan(export, [], status="draft")
    refused = await export.client.post(f"/v1/loans/{draft}/package", headers=export.officer)
    assert refused.status_code == 409 and field_of(refused) == "status"
    empty, _ = await a_loan(export, [])
    refused = await export.client.post(f"/v1/loans/{empty}/package", headers=export.officer)
    assert refused.status_code == 409 and field_of(refused) == "items"
    # Nothing packaged yet: no manifest, no package.
    for suffix in ("manifest", "package"):
        unready = await export.client.get(f"/v1/loans/{empty}/{suffix}", headers=export.officer)
        assert unready.status_code == 409 and field_of(unready) == "status"
    # The institute cannot build its own package.
    assert (
        await export.client.post(f"/v1/loans/{empty}/package", headers=export.institute)
    ).status_code == 403
