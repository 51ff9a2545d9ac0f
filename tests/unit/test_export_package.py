"""The institute's side of a loan package (services.export.package.unpack_package and `sailo loan fetch`) on
packages made here: what differs from the manifest is reported and not kept, and nothing lands outside the
directory asked for."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from deploy.cli.loans import LoanFetchError, ProgressBar, fetch_loan
from deploy.cli.main import main
from services.export.package import package_aad, recording_file, unpack_package
from shared.contracts.wav import read_wav_header, wav_duration_ms
from shared.platform.crypto import DecryptionError, encrypt_stream
from shared.storage.ziparchive import ZipEntry, zip_stream

LOAN = uuid.UUID("6f1c1f9e-3b7a-4c55-9a43-2f5b7d1e0a11")


def wav_bytes(seconds: float, *, marker: bytes, rate: int = 8000, channels: int = 1) -> bytes:
    """A mono (or `channels`) 16-bit PCM WAV whose samples repeat `marker`."""
    import wave

    frames = int(seconds * rate)
    size = frames * 2 * channels
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((marker * (size // len(marker) + 1))[:size])
    return buffer.getvalue()


@dataclass(frozen=True)
class Audio:
    data: bytes

    @property
    def size_bytes(self) -> int | None:
        return len(self.data)

    async def _pieces(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 10_000):
            yield self.data[start : start + 10_000]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()


def entry_of(item_id: uuid.UUID, audio: bytes, **changes: Any) -> dict[str, Any]:
    header = read_wav_header(audio[:4096])
    return {
        "item_id": str(item_id),
        "file": recording_file(item_id),
        "duration_ms": header.duration_ms(len(audio)),
        "size_bytes": len(audio),
        "sha256": hashlib.sha256(audio).hexdigest(),
        **changes,
    }


def manifest_of(entries: list[dict[str, Any]], loan_id: uuid.UUID = LOAN) -> bytes:
    return orjson.dumps(
        {
            "loan_id": str(loan_id),
            "agreement_ref": "PRH-TUT-2026/14",
            "institute_id": "puhelab",
            "created_at": "2026-11-24T09:00:00+00:00",
            "commitment": "destroy",
            "study_ends_on": "2027-05-31",
            "items": entries,
        }
    )


async def sealed(members: list[ZipEntry], key: bytes, loan_id: uuid.UUID = LOAN) -> bytes:
    archive = zip_stream(members, modified=datetime(2026, 11, 24, 9, tzinfo=UTC))
    return b"".join([piece async for piece in encrypt_stream(key, archive, aad=package_aad(loan_id))])


async def pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 70_000):
        yield data[start : start + 70_000]


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def audios() -> list[bytes]:
    return [wav_bytes(1.0 + n, marker=f"UNIT{n}".encode()) for n in range(3)]


def files_under(root: Path) -> Iterator[str]:
    return (str(path.relative_to(root)) for path in sorted(root.rglob("*")) if path.is_file())


async def test_an_intact_package_unpacks_to_the_manifest_and_its_recordings(
    key: bytes, audios: list[bytes], tmp_path: Path
) -> None:
    ids = [uuid.uuid4() for _ in audios]
    entries = [entry_of(item_id, audio) for item_id, audio in zip(ids, audios, strict=True)]
    package = await sealed(
        [
            ("manifest.json", manifest_of(entries)),
            *((recording_file(i), Audio(a)) for i, a in zip(ids, audios, strict=True)),
        ],
        key,
    )
    report = await unpack_package(pieces(package), package_key=key, loan_id=LOAN, out_dir=tmp_path / "out")
    assert report.ok and (report.items, report.verified, report.mismatches) == (3, 3, [])
    assert report.ciphertext_bytes == len(package)
    assert report.ciphertext_sha256 == hashlib.sha256(package).hexdigest()
    assert report.audio_bytes == sum(len(a) for a in audios)
    assert sorted(files_under(tmp_path / "out")) == sorted(
        ["manifest.json", *(recording_file(item_id) for item_id in ids)]
    )
    for item_id, audio in zip(ids, audios, strict=True):
        assert (tmp_path / "out" / recording_file(item_id)).read_bytes() == audio


async def test_what_differs_from_the_manifest_is_reported_and_not_kept(
    key: bytes, audios: list[bytes], tmp_path: Path
) -> None:
    good, altered, short, timed, absent = (uuid.uuid4() for _ in range(5))
    audio = audios[0]
    entries = [
        entry_of(good, audio),
        entry_of(altered, audio, sha256=hashlib.sha256(b"another recording").hexdigest()),
        entry_of(short, audio, size_bytes=len(audio) + 1),
        entry_of(timed, audio, duration_ms=999_999),
        entry_of(absent, audio),
    ]
    members: list[ZipEntry] = [
        ("manifest.json", manifest_of(entries)),
        *((recording_file(item_id), Audio(audio)) for item_id in (good, altered, short, timed)),
        # Names no package of ours has: one climbing out of the directory, one merely unlisted.
        ("../../escaped.wav", Audio(audio)),
        (recording_file(uuid.uuid4()), Audio(audio)),
    ]
    out = tmp_path / "deep" / "out"
    report = await unpack_package(
        pieces(await sealed(members, key)), package_key=key, loan_id=LOAN, out_dir=out
    )

    assert not report.ok and (report.items, report.verified) == (5, 1)
    problems = "\n".join(report.mismatches)
    assert f"{recording_file(altered)}: SHA-256 differs" in problems
    assert f"{recording_file(short)}: size differs" in problems
    assert f"{recording_file(timed)}: duration differs" in problems
    assert f"{recording_file(absent)}: missing" in problems
    assert "a file with a 17-character name: not in the manifest" in problems and "escaped" not in problems
    assert len(report.mismatches) == 6
    # Only the recording that checks out is kept, and nothing is written outside `out`.
    assert sorted(files_under(tmp_path)) == [
        f"deep/out/{name}" for name in ("manifest.json", recording_file(good))
    ]


async def test_a_package_opens_only_with_its_key_and_as_its_own_loan(
    key: bytes, audios: list[bytes], tmp_path: Path
) -> None:
    item_id = uuid.uuid4()
    members: list[ZipEntry] = [
        ("manifest.json", manifest_of([entry_of(item_id, audios[0])])),
        (recording_file(item_id), Audio(audios[0])),
    ]
    package = await sealed(members, key)
    with pytest.raises(DecryptionError):
        await unpack_package(pieces(package), package_key=os.urandom(32), loan_id=LOAN, out_dir=tmp_path)
    with pytest.raises(DecryptionError):
        await unpack_package(pieces(package), package_key=key, loan_id=uuid.uuid4(), out_dir=tmp_path)
    with pytest.raises(DecryptionError):
        await unpack_package(pieces(package[:-100]), package_key=key, loan_id=LOAN, out_dir=tmp_path)
    assert list(files_under(tmp_path)) == []

    # Encrypted for this loan but with another loan's manifest inside: nothing is taken from it.
    other = await sealed([("manifest.json", manifest_of([], uuid.uuid4())), members[1]], key)
    report = await unpack_package(pieces(other), package_key=key, loan_id=LOAN, out_dir=tmp_path)
    assert not report.ok and report.mismatches == ["manifest.json: not a loan manifest of this loan"]
    assert list(files_under(tmp_path)) == []


@pytest.mark.parametrize(("rate", "channels", "seconds"), [(8000, 1, 1.0), (16000, 1, 2.5), (44100, 2, 0.3)])
def test_the_duration_is_computed_as_ingest_records_it(rate: int, channels: int, seconds: float) -> None:
    audio = wav_bytes(seconds, marker=b"\x01\x02", rate=rate, channels=channels)
    expected = read_wav_header(audio[:4096]).duration_ms(len(audio))
    assert wav_duration_ms(audio[:4096], len(audio)) == expected == int(seconds * 1000)
    assert wav_duration_ms(b"not a wav file at all", 100) is None


def test_the_progress_bar_shows_bytes_and_percent_in_place() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, 4_000_000, width=10, interval=3600)
    bar.advance(1_000_000)
    bar.advance(1)  # the same percent, within the interval: not redrawn
    bar.advance(2_999_999)
    bar.finish()
    assert stream.getvalue().split("\r")[1:] == [
        "[##--------] 1.0 / 4.0 MB  25%",
        "[##########] 4.0 / 4.0 MB 100%",
        "[##########] 4.0 / 4.0 MB 100%\n",
    ]


async def test_fetch_reports_a_download_that_differs_from_what_the_service_announced(
    key: bytes, audios: list[bytes], tmp_path: Path
) -> None:
    item_id = uuid.uuid4()
    package = await sealed(
        [
            ("manifest.json", manifest_of([entry_of(item_id, audios[1])])),
            (recording_file(item_id), Audio(audios[1])),
        ],
        key,
    )
    announced = hashlib.sha256(b"what the service stored").hexdigest()

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/v1/loans/{LOAN}/package-key":
            body = {
                "key": base64.b64encode(key).decode(),
                "package_sha256": hashlib.sha256(package).hexdigest(),
            }
            return httpx.Response(200, json=body)
        if request.url.path == f"/v1/loans/{LOAN}/package":
            return httpx.Response(200, content=package, headers={"X-Package-SHA256": announced})
        return httpx.Response(
            404, json={"title": "Loan not found", "errors": [{"field": "loan_id", "reason": "no such loan"}]}
        )

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(serve), base_url="http://export.test"
    ) as client:
        report = await fetch_loan(client, LOAN, tmp_path / "out")
        assert report.verified == 1 and report.mismatches == [
            "the package's SHA-256 differs from the download's header"
        ]
        assert not report.ok
        with pytest.raises(LoanFetchError, match=r"HTTP 404 \(loan_id: no such loan\)"):
            await fetch_loan(client, uuid.uuid4(), tmp_path / "none")


def test_the_fetch_command_refuses_a_malformed_loan_id_or_a_missing_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("SAILO_TOKEN", raising=False)
    arguments = ["--export-url", "http://export.test", "--out", str(tmp_path)]
    assert main(["loan", "fetch", "not-a-loan", "--token", "t", *arguments]) == 2
    assert "LOAN_ID" in capsys.readouterr().err
    assert main(["loan", "fetch", str(LOAN), *arguments]) == 2
    assert "--token" in capsys.readouterr().err
